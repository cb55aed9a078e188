/** Small pieces every view uses: status badges, error and empty states, a table that scrolls on a phone. */

import type { ComponentChildren } from 'preact';
import type { ApiError } from './api.js';
import { short } from './format.js';

export function Badge({ status }: { status: string }) {
  return <span class={`badge badge-${status}`}>{status.replace('_', ' ')}</span>;
}

/**
 * What went wrong, in the node's own words, and what to do. A node that does not answer is
 * said once, at the top of the page (`banner`); each view only notes that it is not current.
 */
export function ErrorState({ error, title, banner }: { error: ApiError; title?: string; banner?: boolean }) {
  if (error.status === 0 && !banner) return <p class="hint stale">Not updated: the node does not answer.</p>;
  const hint =
    error.status === 0
      ? 'The dashboard keeps trying; start the node again or check its address.'
      : error.status === 401
        ? 'Paste a valid account key on the Account page (gridx account create prints one).'
        : error.status === 403
          ? 'This key may not see that; use the key of the account that owns it.'
          : error.status === 429
            ? 'Too many requests from this caller; the dashboard tries again when the node says it may.'
            : undefined;
  return (
    <div class="error" role="alert">
      <strong>{title ?? (error.status === 0 ? 'Node unreachable' : `Error ${error.status}`)}</strong>
      <p>{error.message}</p>
      {hint && <p class="hint">{hint}</p>}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

export function Loading() {
  return <p class="loading">Loading…</p>;
}

export function Table({ head, children, label }: { head: string[]; children: ComponentChildren; label: string }) {
  return (
    <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
      <table>
        <thead>
          <tr>
            {head.map((h) => (
              <th key={h}>{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** A cell that shows a shortened id and keeps the whole one to copy. */
export function Id({ id, keep }: { id: string; keep?: number }) {
  const shown = keep ? short(id, keep) : id;
  return (
    <code class="id" title={id}>
      {shown}
    </code>
  );
}

/** Labelled values as cards; a row whose value is empty (undefined, false, '') is left out. */
export function Fields({ rows }: { rows: Array<[string, ComponentChildren, 'wide'?]> }) {
  return (
    <dl class="spec">
      {rows
        .filter(([, value]) => value !== undefined && value !== false && value !== '' && value !== null)
        .map(([label, value, wide]) => (
          <div key={label} class={wide}>
            <dt>{label}</dt>
            <dd>{value}</dd>
          </div>
        ))}
    </dl>
  );
}
