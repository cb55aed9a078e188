/**
 * Who is asking. An account presents its API key as "Authorization: Bearer <key>"; a
 * server requires one on every write, a loopback-only node may run open (anonymous jobs,
 * which anybody may see). A task with an owner is that account's alone: only it sees the
 * output and result, follows it, and cancels it.
 */

import type { FastifyRequest } from 'fastify';
import type { Job } from '../domain/job.js';
import { GridxError } from '../errors.js';
import type { Accounts } from '../ledger/accounts.js';
import type { Account } from '../store/ledger-store.js';

export interface AuthDeps {
  accounts: Accounts;
  auth: 'required' | 'open';
}

/**
 * A browser cannot set headers on a WebSocket: it names the key as a subprotocol instead,
 * "gridx.bearer.<key>", offered after "gridx" (the one the node answers with, so the key
 * is never echoed).
 */
const WS_PROTOCOL = 'gridx';
const WS_BEARER = 'gridx.bearer.';

/** The subprotocol a WebSocket upgrade is answered with: never the one carrying a key. */
export function chooseWsProtocol(offered: Set<string>): string | false {
  if (offered.has(WS_PROTOCOL)) return WS_PROTOCOL;
  return [...offered].find((p) => !p.startsWith(WS_BEARER)) ?? false;
}

/**
 * The Authorization a request carries: its header, or on a WebSocket upgrade (only there)
 * the key a browser offered as a subprotocol. The one reading of both, for authentication
 * and for whom a request counts against.
 */
export function authorizationOf(request: FastifyRequest): string | undefined {
  return request.headers.authorization ?? wsBearer(request);
}

/** The Bearer token of a request, if any; malformed headers are a 401 that says how to send one. */
export function bearerOf(request: FastifyRequest): string | undefined {
  const header = authorizationOf(request);
  if (header === undefined || header === '') return undefined;
  const token = tokenOf(header);
  if (token === undefined) {
    throw new GridxError(
      'UNAUTHORIZED',
      request.headers.authorization === undefined
        ? 'the WebSocket subprotocol "gridx.bearer.<key>" must carry an account key'
        : 'Authorization header must be "Bearer <key>"',
    );
  }
  return token;
}

function wsBearer(request: FastifyRequest): string | undefined {
  if (request.headers.upgrade?.toLowerCase() !== 'websocket') return undefined;
  const offered = request.headers['sec-websocket-protocol']?.split(',').map((p) => p.trim());
  const key = offered?.find((p) => p.startsWith(WS_BEARER))?.slice(WS_BEARER.length);
  return key === undefined ? undefined : `Bearer ${key}`;
}

/** The key in an Authorization header however "Bearer" is spelled; undefined when there is none. */
export function tokenOf(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S{8,200})\s*$/i.exec(header ?? '')?.[1];
}

/** The requesting account, or undefined when no key was sent. A key that matches nobody is a 401. */
export async function optionalAccount(request: FastifyRequest, deps: AuthDeps): Promise<Account | undefined> {
  const key = bearerOf(request);
  return key === undefined ? undefined : deps.accounts.authenticate(key);
}

/** The account a write acts for; anonymous (undefined) only where the API runs open. */
export async function writerAccount(request: FastifyRequest, deps: AuthDeps): Promise<Account | undefined> {
  const account = await optionalAccount(request, deps);
  if (!account && deps.auth === 'required') {
    throw new GridxError(
      'UNAUTHORIZED',
      'this server needs an API key for that: send "Authorization: Bearer <key>" (gridx account create prints one; gridx run takes --key or GRIDX_KEY)',
    );
  }
  return account;
}

/** Whether `viewer` may see the job's output and result. */
export function canSee(job: Pick<Job, 'owner'>, viewer: Account | undefined): boolean {
  return job.owner === undefined || job.owner === viewer?.id;
}

/** 401/403 unless `viewer` owns the job (jobs without an owner are anybody's). */
export function mustOwn(job: Pick<Job, 'id' | 'owner'>, viewer: Account | undefined, what: string): void {
  if (canSee(job, viewer)) return;
  if (!viewer) throw new GridxError('UNAUTHORIZED', `task ${job.id} belongs to an account: send its key to ${what} it`);
  throw new GridxError('FORBIDDEN', `task ${job.id} belongs to another account; only its owner may ${what} it`);
}

/**
 * A runner is handed the whole spec of every job it claims, environment included: only an
 * account the operator made for workers (gridx account create --kind runner) may register one.
 */
export function mustBeWorker(account: Account | undefined): void {
  if (account && account.kind !== 'runner') {
    throw new GridxError(
      'FORBIDDEN',
      `account ${account.id} is not a worker account; runners register with a key the operator made with gridx account create --kind runner`,
    );
  }
}
