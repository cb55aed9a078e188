/**
 * The account routes: a balance, its journal, the address deposits are credited from, and
 * withdrawals to it. An account acts only on itself: `/api/accounts/me/...`, or its own id
 * (another account's id is a 403).
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { formatAmount, parseAmount } from '../../domain/amount.js';
import { GridxError } from '../../errors.js';
import type { Account, LedgerEntry, Withdrawal } from '../../store/ledger-store.js';
import type { ApiDeps } from '../app.js';
import { optionalAccount } from '../auth.js';

export function accountView(account: Account) {
  return {
    id: account.id,
    kind: account.kind,
    name: account.name,
    balance: formatAmount(account.balance),
    ...(account.address ? { address: account.address } : {}),
    ...(account.peerId ? { peer_id: account.peerId } : {}),
    created_at: account.createdAt,
  };
}

/** An entry as its account sees it: money in (+) or out (−). */
export function entryView(entry: LedgerEntry, accountId: string) {
  const incoming = entry.to === accountId;
  return {
    seq: entry.seq,
    id: entry.id,
    kind: entry.kind,
    amount: `${incoming ? '' : '-'}${formatAmount(entry.amount)}`,
    counterparty: incoming ? entry.from : entry.to,
    ...(entry.jobId ? { task_id: entry.jobId } : {}),
    ...(entry.executionId ? { execution_id: entry.executionId } : {}),
    ...(entry.address ? { address: entry.address } : {}),
    ...(entry.txHash ? { tx_hash: entry.txHash } : {}),
    ...(entry.memo ? { memo: entry.memo } : {}),
    at: entry.at,
  };
}

export function withdrawalView(w: Withdrawal) {
  return {
    id: w.id,
    address: w.address,
    amount: formatAmount(w.amount),
    status: w.status,
    ...(w.txHash ? { tx_hash: w.txHash } : {}),
    ...(w.error ? { error: w.error } : {}),
    created_at: w.createdAt,
    updated_at: w.updatedAt,
  };
}

const accountParams = {
  type: 'object',
  properties: { account: { type: 'string', minLength: 1, maxLength: 200 } },
  required: ['account'],
} as const;

export function accountRoutes(deps: ApiDeps) {
  /** The caller's account, which must be the one the path names. */
  const self = async (request: FastifyRequest<{ Params: { account: string } }>): Promise<Account> => {
    const account = await optionalAccount(request, deps);
    if (!account) throw new GridxError('UNAUTHORIZED', 'account routes need "Authorization: Bearer <key>" (gridx account create prints one)');
    const named = request.params.account;
    if (named !== 'me' && named !== account.id) {
      throw new GridxError('FORBIDDEN', `your key is for account ${account.id}; an account acts only on itself (use /api/accounts/me)`);
    }
    return account;
  };
  const settlement = () => {
    if (!deps.settlement) {
      throw new GridxError('UNAVAILABLE', 'settlement is off on this server: credits stay in its ledger (the operator enables it with settlement.enabled)');
    }
    return deps.settlement;
  };

  return async function routes(app: FastifyInstance): Promise<void> {
    app.get<{ Params: { account: string } }>('/api/accounts/:account', { schema: { params: accountParams } }, async (request) => ({
      ...accountView(await self(request)),
      ...(deps.settlement ? { treasury: deps.settlement.treasuryAddress, token: deps.settlement.tokenAddress } : {}),
    }));

    app.get<{ Params: { account: string }; Querystring: { limit?: number; before?: number } }>(
      '/api/accounts/:account/ledger',
      {
        schema: {
          params: accountParams,
          querystring: {
            type: 'object',
            properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 }, before: { type: 'integer', minimum: 1 } },
          },
        },
      },
      async (request) => {
        const account = await self(request);
        const entries = await deps.store.ledger.entries({
          accountId: account.id,
          ...(request.query.limit ? { limit: request.query.limit } : {}),
          ...(request.query.before ? { before: request.query.before } : {}),
        });
        return {
          account: account.id,
          balance: formatAmount(account.balance),
          entries: entries.map((e) => entryView(e, account.id)),
          next_before: entries.length > 0 ? entries.at(-1)!.seq : null,
        };
      },
    );

    app.post<{ Params: { account: string }; Body: { address: string; signature: string } }>(
      '/api/accounts/:account/address',
      {
        schema: {
          params: accountParams,
          body: {
            type: 'object',
            required: ['address', 'signature'],
            additionalProperties: false,
            properties: {
              address: { type: 'string', pattern: '^0x[0-9a-fA-F]{40}$' },
              signature: { type: 'string', pattern: '^0x[0-9a-fA-F]{130}$' },
            },
          },
        },
      },
      async (request) => {
        const account = await self(request);
        await settlement().bindAddress(account, request.body.address, request.body.signature as `0x${string}`);
        return accountView((await deps.store.ledger.account(account.id))!);
      },
    );

    app.post<{ Params: { account: string }; Body: { amount: string | number; address?: string } }>(
      '/api/accounts/:account/withdrawals',
      {
        schema: {
          params: accountParams,
          body: {
            type: 'object',
            required: ['amount'],
            additionalProperties: false,
            properties: {
              amount: { type: ['string', 'number'] },
              address: { type: 'string', pattern: '^0x[0-9a-fA-F]{40}$' },
            },
          },
        },
      },
      async (request, reply) => {
        const account = await self(request);
        const amount = parseAmount(request.body.amount, 'amount');
        const withdrawal = await settlement().requestWithdrawal(account, amount, request.body.address);
        return reply.code(202).send(withdrawalView(withdrawal));
      },
    );

    app.get<{ Params: { account: string } }>('/api/accounts/:account/withdrawals', { schema: { params: accountParams } }, async (request) => {
      const account = await self(request);
      return { withdrawals: (await deps.store.ledger.withdrawals(account.id, 100)).map(withdrawalView) };
    });
  };
}
