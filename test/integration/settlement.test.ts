/**
 * ERC20 settlement on a real local chain (anvil): deposits credited after N confirmations
 * and never twice (also across a restart), paid tasks, the runner earns and withdraws, and
 * the on-chain balances match the ledger. Deposits from an unbound address wait until the
 * address is bound.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newSigningKeys } from '../../src/domain/result-digest.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { bindingMessage } from '../../src/ledger/settlement.js';
import { GridxClient } from '../../src/sdk/client.js';
import { RunnerClient } from '../../src/sdk/runner-client.js';
import { type Anvil, DEV_KEYS, addressOf, deployTestToken, signBinding, startAnvil } from '../helpers/anvil.js';
import { eventually } from '../helpers/docker.js';
import { type TestNode, fundedAccount, startTestNode, tempDir } from '../helpers/node.js';
import { okResult as ok } from '../helpers/fixtures.js';

const C = 10n ** 18n;
const SUPPLY = 1_000_000n * C;
const TASK = {
  title: 'paid',
  type: 'docker' as const,
  config: { command: ['echo', 'hi'] },
  environment: { type: 'docker' as const, config: { image: 'gridx/busybox:local' } },
};
const [TREASURY_KEY, ALICE_KEY, WORKER_KEY, CAROL_KEY] = DEV_KEYS as [`0x${string}`, `0x${string}`, `0x${string}`, `0x${string}`];

describe('ERC20 settlement on anvil', () => {
  let anvil: Anvil;
  let token: `0x${string}`;
  let env: Record<string, string>;
  const dataDir = tempDir('gridx-settle-');
  let server: TestNode;

  beforeAll(async () => {
    anvil = await startAnvil();
    const deployed = await deployTestToken(anvil, SUPPLY);
    token = deployed.token.address;
    env = {
      GRIDX_SETTLEMENT: 'true',
      GRIDX_RPC_URL: anvil.url,
      GRIDX_TOKEN_ADDRESS: token,
      GRIDX_TREASURY_KEY: TREASURY_KEY,
      GRIDX_CONFIRMATIONS: '2',
      GRIDX_SETTLEMENT_POLL: '100ms',
      GRIDX_START_BLOCK: String(deployed.token.block),
      GRIDX_RETRY_BACKOFF: '0',
    };
    // The users hold tokens of their own to deposit.
    await anvil.transfer(TREASURY_KEY, token, addressOf(ALICE_KEY), 100n * C);
    await anvil.transfer(TREASURY_KEY, token, addressOf(CAROL_KEY), 10n * C);
    server = await startTestNode({ dataDir, flags: { slots: 0, auth: 'required' }, env, executor: new NoopExecutor() });
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await anvil?.stop();
  });

  it('deposit, paid tasks, the runner earns and withdraws; chain and ledger agree, also after a restart', { timeout: 60_000 }, async () => {
    const alice = await fundedAccount(server, '0', { name: 'alice' });
    const worker = await fundedAccount(server, '0', { kind: 'runner', name: 'worker' });
    const info = await alice.client.account();
    expect(info).toMatchObject({ balance: '0', treasury: addressOf(TREASURY_KEY), token });

    // A signature by another key does not bind the address.
    const wrong = await signBinding(WORKER_KEY, bindingMessage(alice.id));
    await expect(alice.client.bindAddress(addressOf(ALICE_KEY), wrong)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await alice.client.bindAddress(addressOf(ALICE_KEY), await signBinding(ALICE_KEY, bindingMessage(alice.id)));
    await worker.client.bindAddress(addressOf(WORKER_KEY), await signBinding(WORKER_KEY, bindingMessage(worker.id)));

    // Deposit: credited only once it has 2 confirmations.
    const depositTx = await anvil.transfer(ALICE_KEY, token, addressOf(TREASURY_KEY), 50n * C);
    await new Promise((r) => setTimeout(r, 500));
    expect((await alice.client.account()).balance).toBe('0');
    await anvil.mine(2);
    await eventually(() => alice.client.account(), (a) => a.balance === '50', 10_000);
    expect((await alice.client.ledger()).entries[0]).toMatchObject({ kind: 'deposit', amount: '50', tx_hash: depositTx, address: addressOf(ALICE_KEY).toLowerCase() });

    // Three paid tasks, run by the worker's runner.
    const keys = newSigningKeys();
    const reg = await new RunnerClient(server.url, undefined, worker.key).register({ name: 'w', slots: 4, public_key: keys.publicKey });
    const runner = new RunnerClient(server.url, reg.id, reg.token, keys.privateKeyPem);
    const tasks = await Promise.all([1, 2, 3].map(() => alice.client.submitTask({ ...TASK, reward: '5' })));
    const leases = await runner.claim(3, 0);
    expect(leases).toHaveLength(3);
    for (const lease of leases) await runner.result(lease.lease_token, lease.job_id, ok());
    await eventually(() => worker.client.account(), (a) => a.balance === '15', 5000);
    expect((await alice.client.account()).balance).toBe('35');
    expect(tasks).toHaveLength(3);

    // Withdraw 12 to the worker's bound address.
    const w = await worker.client.withdraw('12');
    expect(w).toMatchObject({ status: 'requested', amount: '12', address: addressOf(WORKER_KEY).toLowerCase() });
    expect((await worker.client.account()).balance).toBe('3');
    const done = await eventually(async () => (await worker.client.withdrawals()).withdrawals[0]!, (x) => x.status === 'confirmed', 10_000);
    expect(done.tx_hash).toMatch(/^0x[0-9a-f]{64}$/);

    const onChain = {
      treasury: await anvil.balanceOf(token, addressOf(TREASURY_KEY)),
      alice: await anvil.balanceOf(token, addressOf(ALICE_KEY)),
      worker: await anvil.balanceOf(token, addressOf(WORKER_KEY)),
    };
    expect(onChain).toEqual({ treasury: SUPPLY - 110n * C + 50n * C - 12n * C, alice: 50n * C, worker: 12n * C });
    const totals = await server.node.ledger!.totals();
    // What the ledger holds is exactly what came in on chain minus what went out.
    expect(totals.held).toBe(50n * C - 12n * C);
    expect(totals.held).toBe(onChain.treasury - (SUPPLY - 110n * C));

    // A restart rescans nothing twice: the cursor and the deposit ids hold.
    await server.stop();
    server = await startTestNode({ dataDir, flags: { slots: 0, auth: 'required' }, env, executor: new NoopExecutor() });
    await anvil.mine(3);
    await new Promise((r) => setTimeout(r, 600));
    const aliceAgain = new GridxClient(server.url, { token: alice.key });
    const workerAgain = new GridxClient(server.url, { token: worker.key });
    expect((await aliceAgain.account()).balance).toBe('35');
    expect((await workerAgain.account()).balance).toBe('3');
    expect((await workerAgain.withdrawals()).withdrawals).toMatchObject([{ status: 'confirmed' }]);
    expect(await anvil.transfers(token, addressOf(TREASURY_KEY), addressOf(WORKER_KEY))).toEqual([12n * C]);
  });

  it('a deposit from an address bound to no account waits, and is claimed when the address is bound', { timeout: 30_000 }, async () => {
    const carol = await fundedAccount(server, '0', { name: 'carol' });
    await anvil.transfer(CAROL_KEY, token, addressOf(TREASURY_KEY), 4n * C);
    await anvil.mine(2);
    await eventually(() => server.node.ledger!.balanceOf('unclaimed').then(String), (b) => b === String(4n * C), 10_000);
    expect((await carol.client.account()).balance).toBe('0');
    await carol.client.bindAddress(addressOf(CAROL_KEY), await signBinding(CAROL_KEY, bindingMessage(carol.id)));
    expect((await carol.client.account()).balance).toBe('4');
    expect(await server.node.ledger!.balanceOf('unclaimed')).toBe(0n);
    // Binding again claims nothing twice.
    await carol.client.bindAddress(addressOf(CAROL_KEY), await signBinding(CAROL_KEY, bindingMessage(carol.id)));
    expect((await carol.client.account()).balance).toBe('4');
  });

  it('withdrawing more than the balance is a 402; an address bound elsewhere is a 409', async () => {
    const dave = await fundedAccount(server, '1');
    await expect(dave.client.withdraw('2', addressOf(ALICE_KEY))).rejects.toMatchObject({ code: 'PAYMENT_REQUIRED' });
    expect((await dave.client.account()).balance).toBe('1');
    await expect(dave.client.bindAddress(addressOf(ALICE_KEY), await signBinding(ALICE_KEY, bindingMessage(dave.id)))).rejects.toMatchObject({ code: 'CONFLICT' });
  });
});
