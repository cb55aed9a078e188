/**
 * The account routes: a balance, its journal, the address deposits are credited from, and
 * withdrawals to it. An account acts only on itself: `/api/accounts/me/...`, or its own id
 * (another account's id is a 403).
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parseAmount } from '../../domain/amount.js';
import { GridxError } from '../../errors.js';
import type { Settlement } from '../../ledger/settlement.js';
import type { Account, LedgerStore } from '../../store/ledger-store.js';
import type { AddressBody, WithdrawalRequest } from '../../wire/accounts.js';
import { type AuthDeps, optionalAccount } from '../auth.js';
import { accountView, ledgerPageView, withdrawalListView, withdrawalView } from '../views/accounts.js';

export interface AccountRouteDeps extends AuthDeps {
  ledger: Pick<LedgerStore, 'entries' | 'account' | 'withdrawals'>;
  /** On-chain deposits and withdrawals, when settlement is on. */
  settlement?: Pick<Settlement, 'treasuryAddress' | 'tokenAddress' | 'bindAddress' | 'requestWithdrawal'> | undefined;
}

const accountParams = {
  type: 'object',
  properties: { account: { type: 'string', minLength: 1, maxLength: 200 } },
  required: ['account'],
} as const;

export function accountRoutes(deps: AccountRouteDeps) {
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
    app.get<{ Params: { account: string } }>('/api/accounts/:account', { schema: { params: accountParams } }, async (request) => {
      const account = await self(request);
      return accountView(account, deps.settlement && { treasury: deps.settlement.treasuryAddress, token: deps.settlement.tokenAddress });
    });

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
        const entries = await deps.ledger.entries({
          accountId: account.id,
          ...(request.query.limit ? { limit: request.query.limit } : {}),
          ...(request.query.before ? { before: request.query.before } : {}),
        });
        return ledgerPageView(account, entries);
      },
    );

    app.post<{ Params: { account: string }; Body: AddressBody }>(
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
        return accountView((await deps.ledger.account(account.id))!);
      },
    );

    app.post<{ Params: { account: string }; Body: WithdrawalRequest }>(
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
      return withdrawalListView(await deps.ledger.withdrawals(account.id, 100));
    });
  };
}
