/**
 * WebSocket streams of the update log: GET /api/events (every task) and
 * GET /api/tasks/:id/events (one). Each message carries its sequence number; a client
 * that reconnects with ?since=SEQ is first replayed what it missed, so it loses nothing.
 * Pings keep connections alive; a consumer that falls too far behind is closed with a
 * reason (and the SEQ to resume from) instead of growing the server's memory.
 */

import type {} from '@fastify/websocket';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { GridxError } from '../../errors.js';
import type { StoredEvent } from '../../store/store.js';
import type { ApiDeps } from '../app.js';
import { mustOwn, optionalAccount } from '../auth.js';

export interface EventStreamOptions {
  pingIntervalMs?: number;
  /** Bytes queued for one client before it is closed as too slow. */
  maxBufferedBytes?: number;
}

const REPLAY_PAGE = 500;
/** Close code for a consumer that fell behind (4000-4999 are the application's). */
export const CLOSE_SLOW_CONSUMER = 4008;

function wire(event: StoredEvent): string {
  return JSON.stringify({ seq: event.seq, type: event.type, task_id: event.jobId, at: event.at, ...event.data });
}

/** Streams the update log to one socket: replay after `since`, then live. */
export function streamEvents(
  socket: Pick<WebSocket, 'send' | 'close' | 'ping' | 'on' | 'terminate' | 'bufferedAmount'>,
  deps: Pick<ApiDeps, 'eventLog' | 'store' | 'shutdown'>,
  options: { since: number; jobId?: string; pingIntervalMs?: number; maxBufferedBytes?: number; viewer?: string | undefined },
): void {
  const { since, jobId } = options;
  const pingMs = options.pingIntervalMs ?? 15_000;
  const maxBuffered = options.maxBufferedBytes ?? 4 * 1024 * 1024;
  let last = since;
  let replaying = true;
  let open = true;
  const pending: StoredEvent[] = [];
  const close = (code: number, reason: string) => {
    if (!open) return;
    open = false;
    cleanup();
    socket.close(code, reason);
  };
  const send = (event: StoredEvent) => {
    if (!open || event.seq <= last || (jobId !== undefined && event.jobId !== jobId)) return;
    // Another account's task: skipped, but the position moves on.
    if (event.owner !== undefined && event.owner !== options.viewer) {
      last = event.seq;
      return;
    }
    if (socket.bufferedAmount > maxBuffered) {
      close(CLOSE_SLOW_CONSUMER, `consumer too slow; reconnect with ?since=${last}`);
      return;
    }
    socket.send(wire(event));
    last = event.seq;
  };
  const off = deps.eventLog.subscribe((event) => (replaying ? pending.push(event) : send(event)));
  const ping = setInterval(() => socket.ping(), pingMs);
  const onShutdown = () => close(1001, 'the node is shutting down; reconnect with ?since=' + last);
  deps.shutdown.addEventListener('abort', onShutdown, { once: true });
  const cleanup = () => {
    off();
    clearInterval(ping);
    deps.shutdown.removeEventListener('abort', onShutdown);
  };
  socket.on('close', () => {
    open = false;
    cleanup();
  });
  socket.on('error', () => socket.terminate());
  void (async () => {
    try {
      for (;;) {
        const page = await deps.store.eventsSince(last, { ...(jobId ? { jobId } : {}), limit: REPLAY_PAGE });
        page.forEach(send);
        if (page.length < REPLAY_PAGE || !open) break;
      }
    } catch (err) {
      close(1011, `replay failed: ${(err as Error).message}`);
      return;
    }
    replaying = false;
    pending.splice(0).forEach(send);
  })();
}

export function eventRoutes(deps: ApiDeps, options: EventStreamOptions = {}) {
  const sinceSchema = {
    querystring: {
      type: 'object',
      properties: { since: { type: 'integer', minimum: 0, default: 0 } },
    },
  } as const;

  // Who asked, checked before the upgrade (a bad key is a plain 401), for the handler to filter by.
  const viewers = new WeakMap<FastifyRequest, string | undefined>();
  const identify = async (request: FastifyRequest) => {
    viewers.set(request, (await optionalAccount(request, deps))?.id);
  };

  return async function routes(app: FastifyInstance): Promise<void> {
    app.get<{ Querystring: { since: number } }>('/api/events', { websocket: true, schema: sinceSchema, preHandler: identify }, (socket, request) =>
      streamEvents(socket, deps, { ...options, since: request.query.since, viewer: viewers.get(request) }),
    );
    app.get<{ Params: { id: string }; Querystring: { since: number } }>(
      '/api/tasks/:id/events',
      {
        websocket: true,
        schema: sinceSchema,
        preHandler: async (request) => {
          const job = await deps.store.get(request.params.id);
          if (!job) throw new GridxError('NOT_FOUND', `no task with id ${request.params.id}; list tasks with GET /api/tasks`);
          const account = await optionalAccount(request, deps);
          mustOwn(job, account, 'follow');
          viewers.set(request, account?.id);
        },
      },
      (socket, request) =>
        streamEvents(socket, deps, { ...options, since: request.query.since, jobId: request.params.id, viewer: viewers.get(request) }),
    );
  };
}
