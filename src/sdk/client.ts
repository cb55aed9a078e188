/** A typed client of the Grid-X node API, used by the CLI, tests and benchmarks. */

import type { JobView } from '../api/views.js';
import type { Job } from '../domain/job.js';
import type { Offer } from '../domain/offer.js';
import WebSocket from 'ws';
import { ErrorCodes, type ErrorCode, GridxError, messageOf } from '../errors.js';

export type { JobView };

export interface JobRequestBody {
  image: string;
  command: string | string[];
  env?: Record<string, string> | string[];
  workdir?: string;
  resources?: { cpus?: number; memory?: string | number; gpus?: number };
  timeout?: string | number;
  network?: string;
  title?: string;
  /** Run only on the node it is sent to. */
  pin?: boolean;
  /** Credits paid from the caller's account to whoever runs it. */
  reward?: string | number;
  /** Run by this many different workers; the majority result is accepted and paid. */
  verification?: { replicas: number };
}

export interface AccountInfo {
  id: string;
  kind: 'user' | 'runner' | 'node' | 'system';
  name: string;
  balance: string;
  address?: string;
  peer_id?: string;
  created_at: string;
  /** When the server settles on chain: where deposits go, and the token. */
  treasury?: string;
  token?: string;
}

export interface LedgerLine {
  seq: number;
  id: string;
  kind: string;
  /** Signed: "-5" left the account. */
  amount: string;
  counterparty: string;
  task_id?: string;
  execution_id?: string;
  address?: string;
  tx_hash?: string;
  memo?: string;
  at: string;
}

export interface WithdrawalInfo {
  id: string;
  address: string;
  amount: string;
  status: 'requested' | 'signed' | 'confirmed' | 'failed';
  tx_hash?: string;
  error?: string;
  created_at: string;
  updated_at: string;
}

export interface NodeStatus {
  status: 'idle' | 'busy';
  nodeId: string;
  /** The node's libp2p peer id (equal to nodeId). */
  peerId: string;
  multiaddrs: string[];
  /** Peers whose offers this node holds. */
  peers: number;
  /** Open libp2p connections. */
  connections: number;
  version: string;
  slots: { total: number; used: number; free: number };
  queue: { pending: number; running: number };
  resources: {
    cpus: number;
    cpuLoadPercent: number;
    memoryTotalBytes: number;
    memoryFreeBytes: number;
    gpus: Array<{ name: string }>;
  };
  limits: { cpus: number; memory: string; timeout: string; gpus: number; networks: string[] };
}

export interface ParityTask {
  title: string;
  description?: string;
  type?: 'docker';
  config: { command: string[]; resources?: { memory?: string; cpu?: number; timeout?: number | string } };
  environment: { type?: 'docker'; config: { image: string; workdir?: string; env?: string[] } };
  /** Credits per execution, paid from the caller's account. */
  reward?: number | string;
  /** Run by this many different workers; the majority result is accepted and paid. */
  verification?: { replicas: number };
}

/** One message of a task's event stream. */
export interface TaskEvent {
  seq: number;
  type: 'status' | 'result' | 'output';
  task_id: string;
  at: string;
  status?: string;
  stream?: 'stdout' | 'stderr';
  data?: string;
  task?: { result?: { exit_code: number | null; reason?: string; message?: string } };
}

export interface PeerList {
  peerId: string;
  peers: Array<{ peerId: string; connected: boolean; offer: Offer }>;
}

/** One line of a followed log: output, a status change, the end, or an error. */
export type LogEvent =
  | { stream: 'stdout' | 'stderr'; data: string }
  | { event: 'status'; status: Job['status'] }
  | ({ event: 'end' } & JobView)
  | { event: 'error'; error: string };

export interface ClientOptions {
  /** Sent as "Authorization: Bearer <token>". */
  token?: string;
}

export class GridxClient {
  readonly baseUrl: string;
  protected readonly token: string | undefined;

  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.token = options.token;
  }

  status(options: { signal?: AbortSignal } = {}): Promise<NodeStatus> {
    return this.request('GET', '/status', undefined, options.signal);
  }

  /** Submits a job; with `wait` (the default) the answer comes when the job ends. */
  submit(body: JobRequestBody, options: { wait?: boolean; signal?: AbortSignal } = {}): Promise<JobView> {
    const wait = options.wait ?? true;
    return this.request('POST', `/job${wait ? '' : '?wait=false'}`, body, options.signal);
  }

  /** The peers this node knows, each with its current offer. */
  peers(options: { signal?: AbortSignal } = {}): Promise<PeerList> {
    return this.request('GET', '/peers', undefined, options.signal);
  }

  get(id: string, options: { signal?: AbortSignal } = {}): Promise<JobView> {
    return this.request('GET', `/jobs/${encodeURIComponent(id)}`, undefined, options.signal);
  }

  list(
    query: { status?: string; limit?: number; cursor?: string } = {},
    options: { signal?: AbortSignal } = {},
  ): Promise<{ jobs: JobView[]; nextCursor: string | null }> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const qs = params.size ? `?${params}` : '';
    return this.request('GET', `/jobs${qs}`, undefined, options.signal);
  }

  cancel(id: string, options: { signal?: AbortSignal } = {}): Promise<JobView> {
    return this.request('DELETE', `/jobs/${encodeURIComponent(id)}`, undefined, options.signal);
  }

  /** Submits a task in Parity's format (POST /api/tasks). */
  submitTask(body: ParityTask, options: { signal?: AbortSignal } = {}): Promise<{ id: string; status: string }> {
    return this.request('POST', '/api/tasks', body, options.signal);
  }

  /**
   * Follows a task over its WebSocket stream (/api/tasks/:id/events); reconnects with
   * ?since= after a drop, so nothing is missed. Resolves with the final task view.
   */
  async followTask(id: string, onEvent: (event: TaskEvent) => void): Promise<TaskEvent> {
    let since = 0;
    for (let attempt = 0; ; attempt++) {
      const outcome = await new Promise<{ end?: TaskEvent; error?: Error }>((resolve) => {
        const ws = new WebSocket(`${this.baseUrl.replace(/^http/, 'ws')}/api/tasks/${encodeURIComponent(id)}/events?since=${since}`, {
          headers: this.token ? { authorization: `Bearer ${this.token}` } : {},
        });
        ws.on('message', (raw) => {
          const event = JSON.parse(raw.toString()) as TaskEvent;
          since = event.seq;
          onEvent(event);
          if (event.type === 'result') {
            ws.close();
            resolve({ end: event });
          }
        });
        ws.on('unexpected-response', (_req, res) => {
          const code = ({ 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'NOT_FOUND' } as const)[res.statusCode ?? 0] ?? 'REMOTE_ERROR';
          resolve({ error: new GridxError(code, `no event stream for task ${id} (HTTP ${res.statusCode}${code === 'REMOTE_ERROR' ? '' : `: ${code.toLowerCase()}`})`) });
        });
        ws.on('error', (err) => resolve({ error: err }));
        ws.on('close', () => resolve({ error: new Error('the event stream closed') }));
      });
      if (outcome.end) return outcome.end;
      if (outcome.error instanceof GridxError || attempt >= 5) {
        throw outcome.error instanceof GridxError ? outcome.error : new GridxError('UNAVAILABLE', `lost the event stream of task ${id}: ${outcome.error?.message}`);
      }
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
    }
  }

  /** Streams a job's output live; resolves with the final job when it ends. */
  async follow(id: string, onEvent: (event: LogEvent) => void, options: { signal?: AbortSignal } = {}): Promise<JobView> {
    const res = await this.fetch('GET', `/jobs/${encodeURIComponent(id)}/logs?follow=true`, undefined, options.signal);
    if (!res.ok || !res.body) throw await errorFrom(res);
    const decoder = new TextDecoder();
    let buffer = '';
    let end: JobView | undefined;
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!line.trim()) continue;
        const event = JSON.parse(line) as LogEvent;
        onEvent(event);
        if ('event' in event && event.event === 'end') end = event;
        if ('event' in event && event.event === 'error') throw new GridxError('REMOTE_ERROR', event.error);
      }
    }
    if (!end) throw new GridxError('REMOTE_ERROR', `the log stream of job ${id} ended before the job did`);
    return end;
  }

  /** The caller's account (needs the client's token). */
  account(options: { signal?: AbortSignal } = {}): Promise<AccountInfo> {
    return this.request('GET', '/api/accounts/me', undefined, options.signal);
  }

  ledger(options: { limit?: number; before?: number; signal?: AbortSignal } = {}): Promise<{ balance: string; entries: LedgerLine[]; next_before: number | null }> {
    const q = new URLSearchParams();
    if (options.limit) q.set('limit', String(options.limit));
    if (options.before) q.set('before', String(options.before));
    return this.request('GET', `/api/accounts/me/ledger${q.size ? `?${q}` : ''}`, undefined, options.signal);
  }

  bindAddress(address: string, signature: string): Promise<AccountInfo> {
    return this.request('POST', '/api/accounts/me/address', { address, signature });
  }

  withdraw(amount: string, address?: string): Promise<WithdrawalInfo> {
    return this.request('POST', '/api/accounts/me/withdrawals', { amount, ...(address ? { address } : {}) });
  }

  withdrawals(): Promise<{ withdrawals: WithdrawalInfo[] }> {
    return this.request('GET', '/api/accounts/me/withdrawals');
  }

  protected async request<T>(method: string, pathname: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.fetch(method, pathname, body, signal);
    if (!res.ok) throw await errorFrom(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  private async fetch(method: string, pathname: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    try {
      return await fetch(`${this.baseUrl}${pathname}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      const cause = (err as { cause?: { code?: string } }).cause;
      throw new GridxError(
        'UNAVAILABLE',
        `cannot reach a Grid-X node at ${this.baseUrl} (${cause?.code ?? messageOf(err)}); is \`gridx node\` running there?`,
        { cause: err },
      );
    }
  }
}

async function errorFrom(res: Response): Promise<GridxError> {
  let message = `${res.status} ${res.statusText}`;
  let code: ErrorCode = res.status === 404 ? 'NOT_FOUND' : res.status === 400 ? 'INVALID_INPUT' : 'REMOTE_ERROR';
  try {
    const body = (await res.json()) as { error?: string; code?: string };
    if (body.error) message = body.error;
    // The node's own code where it is one a caller can act on; a remote 5xx stays REMOTE_ERROR.
    if (body.code && body.code in ErrorCodes && res.status < 500) code = body.code as ErrorCode;
  } catch {
    // not JSON: keep the status line
  }
  return new GridxError(code, message);
}
