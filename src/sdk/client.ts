/** A typed client of the Grid-X node API, used by the CLI, tests and benchmarks. */

import WebSocket from 'ws';
import type { OutputFile } from '../domain/data.js';
import { ErrorCodes, type ErrorCode, GridxError, messageOf } from '../errors.js';
import type { AccountInfo, LedgerLine, LedgerPage, WithdrawalInfo, WithdrawalList } from '../wire/accounts.js';
import type { ErrorBody } from '../wire/errors.js';
import type {
  BlobRef,
  InputBody,
  JobList,
  JobLogs,
  JobRequestBody,
  JobView,
  LogEvent,
  NodeStatus,
  OutputsView,
  PeerList,
  StrangerView,
} from '../wire/gridx.js';
import type { ParityTask, TaskEvent, TaskView } from '../wire/parity.js';
import * as files from './files.js';
import type { BlobSource, Exchange, OutputOptions, TransferOptions } from './files.js';
import { streamRequest } from './stream-request.js';

// The wire shapes the client speaks, for its callers: defined once in src/wire/.
export type {
  AccountInfo,
  BlobRef,
  InputBody,
  JobList,
  JobLogs,
  JobRequestBody,
  JobView,
  LedgerLine,
  LedgerPage,
  LogEvent,
  NodeStatus,
  OutputFile,
  OutputsView,
  ParityTask,
  PeerList,
  StrangerView,
  TaskEvent,
  TaskView,
  WithdrawalInfo,
  WithdrawalList,
};
export type { BlobSource, Dialect, OutputOptions, ProgressListener, TransferOptions } from './files.js';
export { outputTarget } from './files.js';

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
  ): Promise<JobList> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const qs = params.size ? `?${params}` : '';
    return this.request('GET', `/jobs${qs}`, undefined, options.signal);
  }

  cancel(id: string, options: { signal?: AbortSignal } = {}): Promise<JobView> {
    return this.request('DELETE', `/jobs/${encodeURIComponent(id)}`, undefined, options.signal);
  }

  /** Submits a task in Parity's format (POST /api/tasks). */
  submitTask(body: ParityTask, options: { signal?: AbortSignal } = {}): Promise<TaskView> {
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

  ledger(options: { limit?: number; before?: number; signal?: AbortSignal } = {}): Promise<LedgerPage> {
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

  withdrawals(): Promise<WithdrawalList> {
    return this.request('GET', '/api/accounts/me/withdrawals');
  }

  /** Uploads a blob (POST /blobs) from a local file's path, bytes or a stream, streamed and checked by its sha256. */
  putBlob(source: BlobSource, options: TransferOptions = {}): Promise<BlobRef> {
    return files.putBlob(this.exchange, source, options);
  }

  /** Downloads a blob into the file `dest`, checked against its digest (a mismatch keeps nothing). */
  getBlob(digest: string, dest: string, options: TransferOptions = {}): Promise<BlobRef> {
    return files.getBlob(this.exchange, digest, dest, options);
  }

  /** The manifest of what a job left under /outputs; CONFLICT while it has not ended, NOT_FOUND when it left none. */
  outputs(id: string, options: OutputOptions = {}): Promise<OutputsView> {
    return files.outputs(this.exchange, id, options);
  }

  /** One output file (`path` relative to /outputs) into the file `dest`, checked against its sha256. */
  downloadOutput(
    id: string,
    path: string,
    dest: string,
    options: TransferOptions & OutputOptions & { expect?: { sha256: string; size: number } } = {},
  ): Promise<OutputFile> {
    return files.downloadOutput(this.exchange, id, path, dest, options);
  }

  /** Every output file of a job into `dir`, each checked; refuses paths that would leave `dir`. Resolves with the manifest. */
  downloadOutputs(id: string, dir: string, options: TransferOptions & OutputOptions = {}): Promise<OutputsView> {
    return files.downloadOutputs(this.exchange, id, dir, options);
  }

  protected async request<T>(method: string, pathname: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.fetch(method, pathname, body, signal);
    if (!res.ok) throw await errorFrom(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** A raw request for the file transfers: any body, the response as it came; a status that is not 2xx throws. */
  protected readonly exchange: Exchange = async (method, pathname, init = {}) => {
    const res = await this.send(method, pathname, init);
    if (!res.ok) throw await errorFrom(res);
    return res;
  };

  private fetch(method: string, pathname: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    if (body === undefined) return this.send(method, pathname, { signal });
    return this.send(method, pathname, { body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal });
  }

  private async send(method: string, pathname: string, init: Parameters<Exchange>[2] & object): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    const url = `${this.baseUrl}${pathname}`;
    try {
      if (isStream(init.body)) return await streamRequest(url, { method, headers, body: init.body, signal: init.signal });
      return await fetch(url, {
        method,
        headers,
        ...(init.body == null ? {} : { body: init.body }),
        ...(init.signal ? { signal: init.signal } : {}),
      });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      const code = (err as { cause?: { code?: string } }).cause?.code ?? (err as NodeJS.ErrnoException).code;
      throw new GridxError(
        'UNAVAILABLE',
        `cannot reach a Grid-X node at ${this.baseUrl} (${code ?? messageOf(err)}); is \`gridx node\` running there?`,
        { cause: err },
      );
    }
  }
}

function isStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === 'object' && body !== null && Symbol.asyncIterator in body;
}

async function errorFrom(res: Response): Promise<GridxError> {
  let message = `${res.status} ${res.statusText}`;
  let code: ErrorCode = res.status === 404 ? 'NOT_FOUND' : res.status === 400 ? 'INVALID_INPUT' : 'REMOTE_ERROR';
  try {
    const body = (await res.json()) as Partial<ErrorBody>;
    if (body.error) message = body.error;
    // The node's own code where it is one a caller can act on; a remote 5xx stays REMOTE_ERROR.
    if (body.code && body.code in ErrorCodes && res.status < 500) code = body.code as ErrorCode;
  } catch {
    // not JSON: keep the status line
  }
  return new GridxError(code, message);
}
