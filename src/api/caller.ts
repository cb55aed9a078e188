/**
 * Whom a request counts against, for the request rate: an account (however its key is
 * spelled, in the header or a WebSocket's subprotocol), a runner (its own routes), or else
 * the address it came from, IPv6 by its /64 (one host holds a whole /64, and would
 * otherwise have a bucket per address). A made-up key buys no fresh bucket: a key that
 * names no account counts against the address.
 */

import type { FastifyRequest } from 'fastify';
import { addressGroup } from '../domain/addresses.js';
import { hashKey } from '../ledger/accounts.js';
import type { Accounts } from '../ledger/accounts.js';
import { authorizationOf, tokenOf } from './auth.js';

/** A runner's own routes: /api/runners/<id>/... */
export const RUNNER_ROUTE = /^\/api\/runners\/([^/?]+)\//;

const CACHE_MS = 60_000;
const MAX_CACHED = 10_000;

export class CallerKeys {
  /** sha256 of a key → the account it names (null: none), for a minute. */
  private readonly known = new Map<string, { account: string | null; until: number }>();

  constructor(private readonly accounts: Pick<Accounts, 'authenticate'>) {}

  async of(request: FastifyRequest): Promise<string> {
    const runner = RUNNER_ROUTE.exec(request.url);
    if (runner) return `runner:${runner[1]}`;
    const token = tokenOf(authorizationOf(request));
    const account = token === undefined ? null : await this.accountOf(token);
    return account ? `acct:${account}` : `ip:${addressGroup(request.ip)}`;
  }

  private async accountOf(token: string): Promise<string | null> {
    const hash = hashKey(token);
    const hit = this.known.get(hash);
    if (hit && hit.until > Date.now()) return hit.account;
    const account = await this.accounts.authenticate(token).then(
      (a) => a.id,
      () => null,
    );
    this.known.delete(hash);
    this.known.set(hash, { account, until: Date.now() + CACHE_MS });
    if (this.known.size > MAX_CACHED) this.known.delete(this.known.keys().next().value!);
    return account;
  }
}
