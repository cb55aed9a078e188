import { afterEach, describe, expect, it } from 'vitest';
import { isGridxError } from '../../src/errors.js';
import { Admission, COUNTS_FRESH_MS } from '../../src/scheduler/admission.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { SPEC } from '../helpers/fixtures.js';

describe('admission to the queue', () => {
  const stores: SqliteStore[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
  });

  /** A store that counts its reads of the pending counts. */
  function counted(): { store: SqliteStore; reads: () => number } {
    const store = new SqliteStore(':memory:');
    stores.push(store);
    let reads = 0;
    const pendingByOwner = store.pendingByOwner.bind(store);
    store.pendingByOwner = () => {
      reads++;
      return pendingByOwner();
    };
    return { store, reads: () => reads };
  }

  const limits = { maxQueued: 5, accountQueued: 3, anonymousQueued: 2 };
  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (err: unknown) => (isGridxError(err, 'RATE_LIMITED') ? err.message : Promise.reject(err)),
    );

  it('one read serves many submits, and each cap holds', async () => {
    const { store, reads } = counted();
    const admission = new Admission({ store, limits });
    // As the intake does: admitted, then inserted.
    for (const id of ['a1', 'a2', 'a3']) {
      await admission.admit('acct-a');
      await store.insert({ id, spec: SPEC, owner: 'acct-a' });
    }
    expect(await refusal(admission.admit('acct-a'))).toContain('account acct-a may have 3 jobs waiting on this node and 3 are');
    // One read for the three, and one more for the refusal, which is always read afresh.
    expect(reads()).toBe(2);
    for (const id of ['n1', 'n2']) {
      await admission.admit(undefined);
      await store.insert({ id, spec: SPEC });
    }
    expect(await refusal(admission.admit(undefined))).toContain('anonymous callers together may have 2 jobs waiting');
    expect(await refusal(admission.admit('acct-b'))).toContain("this node's queue is full (5 jobs waiting");
  });

  it('concurrent submits share one read, each counting the ones admitted before it', async () => {
    const { store, reads } = counted();
    const admission = new Admission({ store, limits });
    await Promise.all([1, 2, 3].map(() => admission.admit('acct-a')));
    expect(reads()).toBe(1);
    expect(await refusal(admission.admit('acct-b'))).toBeUndefined();
    expect(reads()).toBe(1);
  });

  it('a refused caller is admitted as soon as its jobs leave the queue, not a window later', async () => {
    const { store } = counted();
    const admission = new Admission({ store, limits: { ...limits, accountQueued: 1 } });
    await admission.admit('acct-a');
    await store.insert({ id: 'a1', spec: SPEC, owner: 'acct-a' });
    expect(await refusal(admission.admit('acct-a'))).toContain('may have 1 jobs waiting');
    await store.transition('a1', { status: ['pending'] }, { status: 'cancelled', finishedAt: new Date().toISOString() });
    await admission.admit('acct-a');
  });

  it('reads the store again once its counts are older than the window: jobs another server queued count', async () => {
    const { store, reads } = counted();
    const admission = new Admission({ store, limits });
    await admission.admit('acct-a');
    // Another server queues three jobs of the same account.
    await store.insert({ id: 'b1', spec: SPEC, owner: 'acct-a' });
    await store.insert({ id: 'b2', spec: SPEC, owner: 'acct-a' });
    await store.insert({ id: 'b3', spec: SPEC, owner: 'acct-a' });
    await new Promise((r) => setTimeout(r, COUNTS_FRESH_MS + 50));
    expect(await refusal(admission.admit('acct-a'))).toContain('3 are');
    expect(reads()).toBe(3);
  });
});
