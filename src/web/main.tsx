/** The Grid-X dashboard: one page, routed by the URL's hash, reading the node it was served by. */

import { render } from 'preact';
import { useState } from 'preact/hooks';
import type { NodeStatus } from '../wire/gridx.js';
import { get, session } from './api.js';
import { useNow, usePoll, useRoute } from './hooks.js';
import { Badge, ErrorState, Id } from './parts.js';
import { AccountView } from './views/account.js';
import { JobPage } from './views/job.js';
import { JobsView } from './views/jobs.js';
import { MeshView } from './views/mesh.js';
import { RunnersView } from './views/runners.js';
import { SubmitView } from './views/submit.js';
import './style.css';

const TABS = [
  ['jobs', 'Jobs'],
  ['mesh', 'Mesh'],
  ['runners', 'Runners'],
  ['account', 'Account'],
  ['submit', 'Submit'],
] as const;

function App() {
  const route = useRoute();
  const now = useNow();
  const status = usePoll((signal) => get<NodeStatus>('/status', signal), 3_000);
  // A key pasted or forgotten re-reads every view.
  const [keyed, setKeyed] = useState(session.key() !== undefined);
  const onKey = () => setKeyed(session.key() !== undefined);
  const [page = 'jobs', id] = route;

  return (
    <>
      <header>
        <a class="brand" href="#/jobs">
          Grid-X
        </a>
        {status.data && (
          <span class="node">
            node <Id id={status.data.nodeId} keep={12} /> <Badge status={status.error?.unreachable ? 'unreachable' : status.data.status} />{' '}
            {status.data.slots.free}/{status.data.slots.total} slots free ·{' '}
            {status.data.connections} peers
          </span>
        )}
        <button type="button" class="theme" onClick={toggleTheme} title="light or dark" aria-label="switch between light and dark theme">
          ◐
        </button>
      </header>
      <nav>
        {TABS.map(([name, label]) => (
          <a key={name} href={`#/${name}`} class={page === name ? 'active' : ''} aria-current={page === name ? 'page' : undefined}>
            {label}
            {name === 'account' && keyed ? ' ✓' : ''}
          </a>
        ))}
      </nav>
      <main key={String(keyed)}>
        {status.error?.unreachable && <ErrorState error={status.error} banner />}
        {page === 'jobs' && !id && <JobsView now={now} />}
        {page === 'jobs' && id && <JobPage id={id} />}
        {page === 'mesh' && <MeshView status={status.data} now={now} />}
        {page === 'runners' && <RunnersView now={now} />}
        {page === 'account' && <AccountView onKey={onKey} />}
        {page === 'submit' && <SubmitView status={status.data} />}
        {!TABS.some(([name]) => name === page) && <p class="empty">No such page. <a href="#/jobs">Back to the jobs</a>.</p>}
      </main>
      <footer>
        {/* In a new tab, without a handle back to this one: the reference is another app on this origin. */}
        API reference:{' '}
        <a href="/docs" target="_blank" rel="noopener noreferrer">
          /docs
        </a>{' '}
        · metrics:{' '}
        <a href="/metrics" target="_blank" rel="noopener noreferrer">
          /metrics
        </a>
        {status.data && <> · version {status.data.version}</>}
      </footer>
    </>
  );
}

const THEME_ITEM = 'gridx.theme';

function applyTheme(theme: string | null): void {
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

function toggleTheme(): void {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === 'dark'
    : matchMedia('(prefers-color-scheme: dark)').matches;
  const next = dark ? 'light' : 'dark';
  localStorage.setItem(THEME_ITEM, next);
  applyTheme(next);
}

applyTheme(localStorage.getItem(THEME_ITEM));
// The page's "Loading…" placeholder goes: render() adds to what the element holds.
const root = document.getElementById('app')!;
root.replaceChildren();
render(<App />, root);
