import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isGridxError } from '../../src/errors.js';
import { Accounts } from '../../src/ledger/accounts.js';
import { SYSTEM_ACCOUNTS, type Transfer } from '../../src/store/ledger-store.js';
import type { JobStore } from '../../src/store/store.js';
import { SPEC } from './fixtures.js';

const C = 10n ** 18n; // one credit in base units

/** The ledger half of the store contract; run once per implementation. */
export function ledgerStoreSuite(name: string, open: () => Promise<JobStore>): void {
  describe(`LedgerStore contract: ${name}`, () => {
    let store: JobStore;
    let accounts: Accounts;
    beforeEach(async () => {
      store = await open();
      accounts = new Accounts(store.ledger);
    });
    afterEach(async () => {
      await store.close();
    });

    const credit = (to: string, amount: bigint, id = `c-${to}-${amount}`): Transfer => ({ id, kind: 'credit', from: SYSTEM_ACCOUNTS.world, to, amount });

    it('has the system accounts; keys are stored hashed and authenticate', async () => {
      for (const id of Object.values(SYSTEM_ACCOUNTS)) expect((await store.ledger.account(id))?.kind).toBe('system');
      const { account, key } = await accounts.create('user', 'alice');
      expect(key).toMatch(/^gxk_/);
      expect((await accounts.authenticate(key)).id).toBe(account.id);
      await expect(accounts.authenticate(`${key}x`)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
      const peer = await accounts.ofPeer('12D3KooWpeer');
      expect(await accounts.ofPeer('12D3KooWpeer')).toEqual(peer);
    });

    it('posts each transfer once, moves balances both ways, and refuses overdrafts with 402', async () => {
      const { account: a } = await accounts.create('user', 'a');
      const { account: b } = await accounts.create('user', 'b');
      expect(await store.ledger.post([credit(a.id, 10n * C)])).toHaveLength(1);
      expect(await store.ledger.post([credit(a.id, 10n * C)])).toHaveLength(0); // same id: no-op
      expect((await store.ledger.account(a.id))!.balance).toBe(10n * C);

      const pay: Transfer = { id: 'pay-1', kind: 'payout', from: a.id, to: b.id, amount: 4n * C };
      await store.ledger.post([pay]);
      await store.ledger.post([pay]);
      expect((await store.ledger.account(a.id))!.balance).toBe(6n * C);
      expect((await store.ledger.account(b.id))!.balance).toBe(4n * C);

      // All or nothing: the second transfer overdraws, so the first is not kept either.
      const err = await store.ledger
        .post([{ id: 'ok', kind: 'payout', from: b.id, to: a.id, amount: 1n }, { id: 'too-much', kind: 'payout', from: a.id, to: b.id, amount: 7n * C }])
        .catch((e: unknown) => e);
      expect(isGridxError(err, 'PAYMENT_REQUIRED')).toBe(true);
      expect((err as Error).message).toContain('holds 6.000000000000000001 credits, less than the 7');
      expect((await store.ledger.account(a.id))!.balance).toBe(6n * C);
      expect((await store.ledger.account(b.id))!.balance).toBe(4n * C);
      expect(await store.ledger.totals()).toEqual({ held: 10n * C, world: -10n * C, netInflow: 10n * C });

      const entries = await store.ledger.entries({ accountId: a.id });
      expect(entries.map((e) => e.id)).toEqual(['pay-1', `c-${a.id}-${10n * C}`]);
    });

    it('inserts a job with its escrow in one transaction: 402 writes neither', async () => {
      const { account } = await accounts.create('user', 'payer');
      await store.ledger.post([credit(account.id, 5n * C)]);
      const escrow = (id: string, amount: bigint): Transfer => ({ id: `escrow:${id}`, kind: 'escrow', from: account.id, to: SYSTEM_ACCOUNTS.escrow, amount, jobId: id });
      await store.insert({ id: 'j1', spec: SPEC, owner: account.id, reward: '3' }, escrow('j1', 3n * C));
      expect((await store.get('j1'))?.owner).toBe(account.id);
      await expect(store.insert({ id: 'j2', spec: SPEC, owner: account.id, reward: '3' }, escrow('j2', 3n * C))).rejects.toMatchObject({
        code: 'PAYMENT_REQUIRED',
      });
      expect(await store.get('j2')).toBeUndefined();
      expect((await store.ledger.account(account.id))!.balance).toBe(2n * C);
      expect((await store.ledger.account(SYSTEM_ACCOUNTS.escrow))!.balance).toBe(3n * C);
    });

    it('marks a job settled with its payout, lists unsettled ended jobs, and keeps chain cursors', async () => {
      const { account } = await accounts.create('user', 'o');
      await store.ledger.post([credit(account.id, 2n * C)]);
      await store.insert({ id: 'j', spec: SPEC, owner: account.id }, { id: 'escrow:j', kind: 'escrow', from: account.id, to: SYSTEM_ACCOUNTS.escrow, amount: C, jobId: 'j' });
      // A job with nothing in escrow is settled as it is inserted: there is nothing to pay out.
      expect((await store.insert({ id: 'free', spec: SPEC, owner: account.id })).settledAt).toEqual(expect.any(String));
      await store.transition('free', { status: ['pending'] }, { status: 'cancelled' });
      await store.transition('j', { status: ['pending'] }, { status: 'cancelled' });
      expect(await store.ledger.unsettledJobs(10)).toEqual(['j']);
      await store.ledger.post([{ id: 'refund:j', kind: 'refund', from: SYSTEM_ACCOUNTS.escrow, to: account.id, amount: C, jobId: 'j' }], {
        settleJob: 'j',
        cursor: { name: 'deposits', value: '42' },
      });
      expect(await store.ledger.unsettledJobs(10)).toEqual([]);
      expect((await store.get('j'))?.settledAt).toEqual(expect.any(String));
      expect(await store.ledger.chainCursor('deposits')).toBe('42');
    });

    it('records withdrawals with their debit and moves them only from the expected status', async () => {
      const { account } = await accounts.create('user', 'w');
      await store.ledger.post([credit(account.id, 5n * C)]);
      const at = new Date().toISOString();
      const w = { id: 'w1', accountId: account.id, address: '0x00000000000000000000000000000000000000aa', amount: 2n * C, status: 'requested' as const, createdAt: at, updatedAt: at };
      await store.ledger.post([{ id: 'withdrawal:w1', kind: 'withdrawal', from: account.id, to: SYSTEM_ACCOUNTS.world, amount: 2n * C }], { withdrawal: w });
      expect(await store.ledger.openWithdrawals()).toEqual([expect.objectContaining({ id: 'w1', amount: 2n * C, status: 'requested' })]);
      await store.ledger.post([], { withdrawalUpdate: { id: 'w1', expect: ['requested'], patch: { status: 'signed', txHash: '0xabc', nonce: 7, rawTx: '0xraw' } } });
      await expect(store.ledger.post([], { withdrawalUpdate: { id: 'w1', expect: ['requested'], patch: { status: 'signed' } } })).rejects.toMatchObject({ code: 'CONFLICT' });
      expect(await store.ledger.withdrawal('w1')).toMatchObject({ status: 'signed', txHash: '0xabc', nonce: 7, rawTx: '0xraw' });
      expect(await store.ledger.totals()).toEqual({ held: 3n * C, world: -3n * C, netInflow: 3n * C });
    });

    it('holds escrow per task: one task cannot pay out of another task\'s escrow, and concurrent paid tasks settle exactly', async () => {
      const payers = await Promise.all([0, 1, 2, 3].map(async (i) => (await accounts.create('user', `p${i}`)).account));
      const { account: worker } = await accounts.create('runner', 'w');
      await store.ledger.post(payers.map((p) => credit(p.id, 100n * C)));
      const escrow = (job: string, from: string, amount: bigint): Transfer => ({ id: `escrow:${job}`, kind: 'escrow', from, to: SYSTEM_ACCOUNTS.escrow, amount, jobId: job });
      // 40 paid tasks from four payers at once, each escrowing 2.
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => store.insert({ id: `pt${i}`, spec: SPEC, owner: payers[i % 4]!.id, reward: '2' }, escrow(`pt${i}`, payers[i % 4]!.id, 2n * C))),
      );
      expect((await store.ledger.account(SYSTEM_ACCOUNTS.escrow))!.balance).toBe(80n * C);
      // A payout larger than its own task's escrow is refused, though escrow as a whole holds enough.
      await expect(
        store.ledger.post([{ id: 'payout:pt0:x', kind: 'payout', from: SYSTEM_ACCOUNTS.escrow, to: worker.id, amount: 3n * C, jobId: 'pt0' }]),
      ).rejects.toMatchObject({ code: 'PAYMENT_REQUIRED' });
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          store.ledger.post([{ id: `payout:pt${i}:e`, kind: 'payout', from: SYSTEM_ACCOUNTS.escrow, to: worker.id, amount: 2n * C, jobId: `pt${i}` }], { settleJob: `pt${i}` }),
        ),
      );
      expect((await store.ledger.account(SYSTEM_ACCOUNTS.escrow))!.balance).toBe(0n);
      expect((await store.ledger.account(worker.id))!.balance).toBe(80n * C);
      for (const p of payers) expect((await store.ledger.account(p.id))!.balance).toBe(80n * C);
      const totals = await store.ledger.totals();
      expect(totals.held).toBe(totals.netInflow);
    });

    it('concurrent transfers in both directions between the same accounts: every one posted once, balances exact', async () => {
      const { account: a } = await accounts.create('user', 'a');
      const { account: b } = await accounts.create('user', 'b');
      await store.ledger.post([credit(a.id, 1000n * C), credit(b.id, 1000n * C)]);
      const transfers: Transfer[] = Array.from({ length: 200 }, (_, i) => ({
        id: `x${i}`,
        kind: 'payout',
        from: i % 2 === 0 ? a.id : b.id,
        to: i % 2 === 0 ? b.id : a.id,
        amount: BigInt(i + 1) * C,
      }));
      // Pairs of transfers in one posting, in opposite account order: the deadlock-prone case.
      await Promise.all(Array.from({ length: 100 }, (_, i) => store.ledger.post([transfers[2 * i]!, transfers[2 * i + 1]!])));
      await Promise.all(transfers.slice(0, 50).map((t) => store.ledger.post([t]))); // duplicates, concurrently
      const sent = (id: string) => transfers.filter((t) => t.from === id).reduce((sum, t) => sum + t.amount, 0n);
      const got = (id: string) => transfers.filter((t) => t.to === id).reduce((sum, t) => sum + t.amount, 0n);
      expect((await store.ledger.account(a.id))!.balance).toBe(1000n * C - sent(a.id) + got(a.id));
      expect((await store.ledger.account(b.id))!.balance).toBe(1000n * C - sent(b.id) + got(b.id));
      expect(await store.ledger.entries({ accountId: a.id, limit: 1000 })).toHaveLength(201);
    });

    it('keeps the invariant through 2,000 random operations, duplicates and refusals included', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await accounts.create('user', `u${i}`)).account.id);
      const everyone = [...ids, SYSTEM_ACCOUNTS.escrow, SYSTEM_ACCOUNTS.fees];
      let seed = 7;
      const rnd = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const posted: Transfer[] = [];
      for (let i = 0; i < 2000; i++) {
        const roll = rnd(10);
        const amount = BigInt(rnd(1000) + 1) * 10n ** BigInt(rnd(19));
        let t: Transfer;
        if (roll === 0 && posted.length > 0) t = posted[rnd(posted.length)]!; // a duplicate
        else if (roll <= 2) t = { id: `t${i}`, kind: 'credit', from: SYSTEM_ACCOUNTS.world, to: ids[rnd(ids.length)]!, amount };
        else if (roll === 3) t = { id: `t${i}`, kind: 'withdrawal', from: ids[rnd(ids.length)]!, to: SYSTEM_ACCOUNTS.world, amount };
        else t = { id: `t${i}`, kind: 'payout', from: everyone[rnd(everyone.length)]!, to: everyone[rnd(everyone.length)]!, amount };
        try {
          await store.ledger.post([t]);
          posted.push(t);
        } catch (err) {
          if (!isGridxError(err, 'PAYMENT_REQUIRED')) throw err;
        }
      }
      const totals = await store.ledger.totals();
      expect(totals.held).toBe(totals.netInflow);
      expect(totals.world).toBe(-totals.held);
      for (const id of everyone) expect((await store.ledger.account(id))!.balance >= 0n).toBe(true);
    });
  });
}
