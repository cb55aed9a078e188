/**
 * How the dashboard talks to its node: JSON over fetch to the same origin, and the update
 * stream over a WebSocket that resumes where it left off. The account key lives in this
 * tab's sessionStorage only: closing the tab forgets it.
 */

import type { ErrorBody } from '../wire/errors.js';
import type { TaskEvent } from '../wire/parity.js';

const KEY_ITEM = 'gridx.key';

export const session = {
  key(): string | undefined {
    return sessionStorage.getItem(KEY_ITEM) ?? undefined;
  },
  setKey(key: string): void {
    sessionStorage.setItem(KEY_ITEM, key);
  },
  forget(): void {
    sessionStorage.removeItem(KEY_ITEM);
  },
};

/** An answer other than 2xx, or no answer: `status` 0 when the node could not be reached. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** When the node said to come back (Retry-After, on a 429). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }

  get unreachable(): boolean {
    return this.status === 0;
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const key = session.key();
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

/** One request; the node's own error message when it refuses, a readable one when it is not there. */
export async function call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new ApiError(0, 'UNREACHABLE', `cannot reach the node at ${location.host}: is it running? (retrying)`);
  }
  if (res.ok) return (await res.json()) as T;
  throw await errorOf(res);
}

async function errorOf(res: Response): Promise<ApiError> {
  const error = (await res.json().catch(() => undefined)) as ErrorBody | undefined;
  const retryAfter = Number(res.headers.get('retry-after'));
  return new ApiError(
    res.status,
    error?.code ?? 'HTTP_' + res.status,
    error?.error ?? `the node answered ${res.status} ${res.statusText}`,
    retryAfter > 0 ? retryAfter * 1000 : undefined,
  );
}

export const get = <T>(path: string, signal?: AbortSignal) => call<T>('GET', path, undefined, signal);

/** Downloads a file the API serves (with the key, which a plain link cannot send). */
export async function download(path: string, name: string): Promise<void> {
  const res = await fetch(path, { headers: headers() });
  if (!res.ok) throw await errorOf(res);
  const url = URL.createObjectURL(await res.blob());
  const a = Object.assign(document.createElement('a'), { href: url, download: name.split('/').pop() ?? name });
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export type StreamState = 'connecting' | 'open' | 'closed';

/**
 * Follows an update stream (/api/events or /api/tasks/:id/events): reconnects after a drop
 * with ?since= the last event seen, so nothing is missed or repeated. `live` starts at the
 * newest event: such a view reads the current state on every 'open'. Returns the stop function.
 */
export function followEvents(
  path: string,
  options: { live?: boolean; onEvent: (event: TaskEvent) => void; onState?: (state: StreamState, detail?: string) => void },
): () => void {
  let since = 0;
  let stopped = false;
  let socket: WebSocket | undefined;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let delay = 500;
  const connect = () => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    // Until an event has been seen there is no position to resume from: a live stream starts live again.
    const query = since === 0 && options.live ? 'live=true' : `since=${since}`;
    const key = session.key();
    options.onState?.('connecting');
    socket = new WebSocket(`${scheme}://${location.host}${path}?${query}`, key ? ['gridx', `gridx.bearer.${key}`] : ['gridx']);
    let opened = false;
    socket.onopen = () => {
      opened = true;
      delay = 500;
      options.onState?.('open');
    };
    socket.onmessage = (message) => {
      const event = JSON.parse(String(message.data)) as TaskEvent;
      since = Math.max(since, event.seq);
      options.onEvent(event);
    };
    socket.onclose = (close) => {
      if (stopped) return;
      // Refused before it opened (a 4xx at the upgrade has no readable body here): said once, retried slower.
      options.onState?.('closed', close.reason || (opened ? 'the stream closed' : 'the node refused or did not answer the stream'));
      retry = setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10_000);
    };
  };
  connect();
  return () => {
    stopped = true;
    clearTimeout(retry);
    socket?.close();
  };
}
