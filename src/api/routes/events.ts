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
import { GridxError, quote } from '../../errors.js';
import type { JobStore, StoredEvent } from '../../store/store.js';
import { CLOSE_SLOW_CONSUMER, type TaskEvent } from '../../wire/parity.js';
import { type AuthDeps, mustOwn, optionalAccount } from '../auth.js';
import type { EventLog } from '../event-log.js';
import type { StreamSlots } from '../stream-slots.js';
import { taskEventView } from '../views/events.js';

export { CLOSE_SLOW_CONSUMER };

/** What streaming the update log needs. */
export interface StreamDeps {
  eventLog: Pick<EventLog, 'subscribe' | 'position'>;
  store: Pick<JobStore, 'get' | 'eventsSince' | 'eventFloor'>;
  /** Aborts when the node begins to shut down: streams close then. */
  shutdown: AbortSignal;
}

export interface EventRouteDeps extends AuthDeps, StreamDeps {
  /** Open streams per caller. */
  streams: Pick<StreamSlots, 'acquire'>;
  eventStream?: EventStreamOptions | undefined;
}

export interface EventStreamOptions {
  pingIntervalMs?: number;
  /** Bytes queued for one client before it is closed as too slow. */
  maxBufferedBytes?: number;
}

const REPLAY_PAGE = 100;
/** A replay sends no more while this much is queued for the client: a slow reader slows only itself. */
const REPLAY_LOW_WATER = 256 * 1024;
const REPLAY_WAIT_MS = 10;
/**
 * The pace of one replay: a client that reads as fast as loopback allows still gets its
 * history at this rate, so ten of them cannot take the event loop from other requests.
 */
const REPLAY_BYTES_PER_S = 4 * 1024 * 1024;
/** What reading another account's event costs a replay, in bytes of its pace. */
const SKIPPED_EVENT_BYTES = 1024;
/** Other requests get the event loop after this much replayed. */
const REPLAY_SLICE_BYTES = 64 * 1024;
function wire(event: StoredEvent): string {
  return JSON.stringify(taskEventView(event));
}

/** Streams the update log to one socket: replay after `since`, then live. */
export function streamEvents(
  socket: Pick<WebSocket, 'send' | 'close' | 'ping' | 'on' | 'terminate' | 'bufferedAmount'>,
  deps: StreamDeps,
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
  const visible = (event: StoredEvent) => event.owner === undefined || event.owner === options.viewer;
  /** Sends what the viewer may see; returns the bytes sent. */
  const send = (event: StoredEvent): number => {
    if (!open || event.seq <= last || (jobId !== undefined && event.jobId !== jobId)) return 0;
    // Another account's task: skipped, but the position moves on.
    if (!visible(event)) {
      last = event.seq;
      return 0;
    }
    if (socket.bufferedAmount > maxBuffered) {
      close(CLOSE_SLOW_CONSUMER, `consumer too slow; reconnect with ?since=${last}`);
      return 0;
    }
    const message = wire(event);
    socket.send(message);
    last = event.seq;
    return message.length;
  };
  const off = deps.eventLog.subscribe((event) => void (replaying ? pending.push(event) : send(event)));
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
    const startedAt = performance.now();
    const outputs = new JobOutputs(deps.store);
    let sentBytes = 0;
    let sliceBytes = 0;
    try {
      // Retention deleted what the client asked for: it is told, and given what is kept.
      const floor = await deps.store.eventFloor();
      if (last > 0 && last < floor && open) {
        const message = `events up to ${floor} were deleted by retention (events.retention); what is kept follows, and a client that starts over reconnects with ?since=${floor}`;
        socket.send(JSON.stringify({ seq: floor, type: 'error', task_id: jobId ?? '', at: new Date().toISOString(), message } satisfies TaskEvent));
        last = floor;
      }
      for (;;) {
        const page = await deps.store.eventsSince(last, { ...(jobId ? { jobId } : {}), limit: REPLAY_PAGE });
        for (const event of page) {
          if (!open) return;
          // Paced: the replay waits for the client instead of queueing the whole history.
          while (open && socket.bufferedAmount > REPLAY_LOW_WATER) await sleep(REPLAY_WAIT_MS);
          if (visible(event)) {
            sliceBytes += send(await outputs.filled(event)) + 64;
          } else {
            // Skipped (the position moves on), but reading it cost the node as much.
            send(event);
            sliceBytes += SKIPPED_EVENT_BYTES;
          }
          if (sliceBytes >= REPLAY_SLICE_BYTES) {
            sentBytes += sliceBytes;
            sliceBytes = 0;
            const ahead = (sentBytes / REPLAY_BYTES_PER_S) * 1000 - (performance.now() - startedAt);
            await (ahead > 0 ? sleep(ahead) : new Promise((resolve) => setImmediate(resolve)));
          }
        }
        if (page.length < REPLAY_PAGE || !open) break;
      }
    } catch (err) {
      close(1011, `replay failed: ${(err as Error).message}`);
      return;
    }
    replaying = false;
    for (const event of pending.splice(0)) send(event);
  })();
}

/** Text sliced by characters (code points), as the stores count them. */
interface Chars {
  slice(start: number, end: number): string;
}

function chars(text: string): Chars {
  // Without surrogate pairs, characters are UTF-16 units: slice the string itself.
  if (!/[\uD800-\uDFFF]/.test(text)) return text;
  const points = Array.from(text);
  return { slice: (start, end) => points.slice(start, end).join('') };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The output a finished job's events point into: once a job ends, its output is stored on
 * the job alone and each output event keeps only {stream, offset, length} in characters.
 */
class JobOutputs {
  private readonly jobs = new Map<string, Promise<{ stdout: Chars; stderr: Chars } | undefined>>();

  constructor(private readonly store: Pick<JobStore, 'get'>) {}

  /** Jobs whose output is held at once: a replay walks the log job by job. */
  private static readonly HELD = 4;

  async filled(event: StoredEvent): Promise<StoredEvent> {
    const { stream, offset, length } = event.data as { stream?: unknown; offset?: unknown; length?: unknown; data?: unknown };
    if (event.type !== 'output' || 'data' in event.data || typeof offset !== 'number' || typeof length !== 'number') return event;
    if (stream !== 'stdout' && stream !== 'stderr') return event;
    let job = this.jobs.get(event.jobId);
    if (!job) {
      job = this.store.get(event.jobId).then((j) => (j ? { stdout: chars(j.stdout), stderr: chars(j.stderr) } : undefined));
      this.jobs.set(event.jobId, job);
      if (this.jobs.size > JobOutputs.HELD) this.jobs.delete(this.jobs.keys().next().value!);
    }
    const text = (await job)?.[stream];
    return { ...event, data: { stream, data: text ? text.slice(offset, offset + length) : '' } };
  }
}

export function eventRoutes(deps: EventRouteDeps) {
  const options = deps.eventStream ?? {};
  const sinceSchema = {
    querystring: {
      type: 'object',
      properties: {
        since: { type: 'integer', minimum: 0, default: 0 },
        // A client that has just read the current state (a dashboard's list) wants what changes next, not the history.
        live: { type: 'boolean', default: false, description: 'start at the newest event instead of ?since (history is not replayed)' },
      },
    },
  } as const;
  const startOf = (query: { since: number; live: boolean }) => (query.live ? Math.max(query.since, deps.eventLog.position) : query.since);

  // Who asked, checked before the upgrade (a bad key is a plain 401), for the handler to filter by.
  const viewers = new WeakMap<FastifyRequest, string | undefined>();
  const identify = async (request: FastifyRequest) => {
    const viewer = (await optionalAccount(request, deps))?.id;
    deps.streams.acquire(request, viewer);
    viewers.set(request, viewer);
  };

  return async function routes(app: FastifyInstance): Promise<void> {
    app.get<{ Querystring: { since: number; live: boolean } }>('/api/events', { websocket: true, schema: sinceSchema, preHandler: identify }, (socket, request) =>
      streamEvents(socket, deps, { ...options, since: startOf(request.query), viewer: viewers.get(request) }),
    );
    app.get<{ Params: { id: string }; Querystring: { since: number; live: boolean } }>(
      '/api/tasks/:id/events',
      {
        websocket: true,
        schema: sinceSchema,
        preHandler: async (request) => {
          const job = await deps.store.get(request.params.id);
          if (!job) throw new GridxError('NOT_FOUND', `no task with id ${quote(request.params.id)}; list tasks with GET /api/tasks`);
          const account = await optionalAccount(request, deps);
          mustOwn(job, account, 'follow');
          deps.streams.acquire(request, account?.id);
          viewers.set(request, account?.id);
        },
      },
      (socket, request) =>
        streamEvents(socket, deps, { ...options, since: startOf(request.query), jobId: request.params.id, viewer: viewers.get(request) }),
    );
  };
}
