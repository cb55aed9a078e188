/**
 * A `gridx server` killed between broadcasting a withdrawal and recording it: after the
 * restart it finds the signed transfer it recorded before broadcasting, settles it by its
 * receipt, and the chain holds exactly one transfer. The operator's CLI (account create,
 * credit) and the user's (balance, withdraw) work against it; no key reaches its output.
 * Two servers on one PostgreSQL with settlement on both: the one holding the settlement
 * duty dies with withdrawals pending, the other takes over, and the chain shows each once.
 */

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bindingMessage } from '../../src/ledger/settlement.js';
import { GridxClient } from '../../src/sdk/client.js';
import { type Anvil, DEV_KEYS, addressOf, deployTestToken, signBinding, startAnvil } from '../helpers/anvil.js';
import { eventually } from '../helpers/docker.js';
import { tempDir } from '../helpers/node.js';
import { cliAccount, runCli, spawnNode } from '../helpers/process.js';

const C = 10n ** 18n;
const [TREASURY_KEY, , PAYEE_KEY] = DEV_KEYS as [`0x${string}`, `0x${string}`, `0x${string}`];

describe('withdrawal crash (real processes, anvil)', () => {
  let anvil: Anvil;
  let env: Record<string, string>;
  let token: `0x${string}`;

  beforeAll(async () => {
    anvil = await startAnvil();
    const { token: deployed } = await deployTestToken(anvil, 1000n * C);
    token = deployed.address;
    env = {
      GRIDX_SETTLEMENT: 'true',
      GRIDX_RPC_URL: anvil.url,
      GRIDX_TOKEN_ADDRESS: token,
      GRIDX_TREASURY_KEY: TREASURY_KEY,
      GRIDX_CONFIRMATIONS: '1',
      GRIDX_SETTLEMENT_POLL: '200ms',
      GRIDX_START_BLOCK: String(deployed.block),
    };
  }, 60_000);

  afterAll(async () => {
    await anvil?.stop();
  });

  it('a server killed after broadcasting a withdrawal pays it exactly once after restart', { timeout: 90_000 }, async () => {
    const dataDir = tempDir('gridx-withdraw-crash-');
    const store = ['--data-dir', dataDir];
    const payee = await cliAccount(store, { name: 'payee', credit: '25' });

    const crashing = await spawnNode(dataDir, ['--no-mesh', '--slots', '0'], 'server', { ...env, GRIDX_FAULT: 'crash-after-broadcast' });
    const client = new GridxClient(crashing.url, { token: payee.key });
    await client.bindAddress(addressOf(PAYEE_KEY), await signBinding(PAYEE_KEY, bindingMessage(payee.id)));
    const withdrawn = await runCli(['withdraw', '10', '--server', crashing.url], { GRIDX_KEY: payee.key });
    expect(withdrawn.stdout).toMatch(/withdrawal \S+: 10 to 0x[0-9a-f]{40}, requested/);
    // It dies right after the broadcast, before it records the outcome.
    await crashing.exited;
    expect(crashing.child.signalCode).toBe('SIGKILL');
    expect(await anvil.transfers(token, addressOf(TREASURY_KEY), addressOf(PAYEE_KEY))).toEqual([10n * C]);

    const restarted = await spawnNode(dataDir, ['--no-mesh', '--slots', '0'], 'server', env);
    try {
      const again = new GridxClient(restarted.url, { token: payee.key });
      const [w] = (await eventually(() => again.withdrawals(), (x) => x.withdrawals[0]?.status === 'confirmed', 20_000)).withdrawals;
      expect(w).toMatchObject({ amount: '10', status: 'confirmed', tx_hash: expect.stringMatching(/^0x/) });
      await new Promise((r) => setTimeout(r, 1000)); // more passes: nothing is sent again
      expect(await anvil.transfers(token, addressOf(TREASURY_KEY), addressOf(PAYEE_KEY))).toEqual([10n * C]);
      expect(await anvil.balanceOf(token, addressOf(PAYEE_KEY))).toBe(10n * C);

      const balance = await runCli(['balance', '--server', restarted.url], { GRIDX_KEY: payee.key });
      expect(balance.code).toBe(0);
      expect(balance.stdout).toContain(`${payee.id} (payee): 15 credits`);
      expect(balance.stdout).toMatch(/withdrawal\s+-10/);
      const listed = await runCli(['account', 'list', ...store]);
      expect(listed.stdout).toMatch(new RegExp(`${payee.id}\\s+user\\s+payee\\s+15\\s+${addressOf(PAYEE_KEY).toLowerCase()}`));
      expect(listed.stdout).toMatch(/^world\s+system\s+.*\s-15\s*$/m);
      for (const out of [crashing.output(), restarted.output()]) {
        expect(out).not.toContain(payee.key);
        expect(out).not.toContain(TREASURY_KEY.slice(2));
      }
    } finally {
      restarted.child.kill('SIGTERM');
      await restarted.exited;
    }
  });

  it('two servers with settlement on: the duty holder dies with withdrawals pending, the other takes over, each is sent once', { timeout: 90_000 }, async () => {
    const db = `${inject('pgUrl')}?schema=settle_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const payee = await cliAccount(['--db', db], { name: 'payee', credit: '25' });
    const flags = ['--no-mesh', '--slots', '0', '--db', db];
    // Started first, it holds settlement; it dies right after its first broadcast.
    const holder = await spawnNode(tempDir(), flags, 'server', { ...env, GRIDX_FAULT: 'crash-after-broadcast' });
    const other = await spawnNode(tempDir(), flags, 'server', env);
    try {
      expect(holder.output()).toContain('duty settlement: now held here');
      expect(other.output()).not.toContain('duty settlement: now held here');
      const client = new GridxClient(other.url, { token: payee.key });
      await client.bindAddress(addressOf(PAYEE_KEY), await signBinding(PAYEE_KEY, bindingMessage(payee.id)));
      const before = await anvil.transfers(token, addressOf(TREASURY_KEY), addressOf(PAYEE_KEY));
      // Requested on the server that does not settle: the holder picks them up from the shared store.
      for (const amount of ['1', '2', '3']) await client.withdraw(amount);
      await holder.exited;
      expect(holder.child.signalCode).toBe('SIGKILL');
      const done = await eventually(() => client.withdrawals(), (x) => x.withdrawals.every((w) => w.status === 'confirmed'), 30_000);
      expect(done.withdrawals).toHaveLength(3);
      expect(other.output()).toContain('duty settlement: now held here');
      await new Promise((r) => setTimeout(r, 1000)); // more passes: nothing is sent again
      const sent = (await anvil.transfers(token, addressOf(TREASURY_KEY), addressOf(PAYEE_KEY))).slice(before.length);
      expect(sent.sort((a, b) => (a < b ? -1 : 1))).toEqual([1n * C, 2n * C, 3n * C]);
      const hashes = done.withdrawals.map((w) => w.tx_hash);
      expect(new Set(hashes).size).toBe(3);
      expect((await client.account()).balance).toBe('19');
    } finally {
      other.child.kill('SIGTERM');
      await other.exited;
    }
  });

  it('gridx token deploy deploys the token on a development chain and prints the settings that switch settlement on', { timeout: 30_000 }, async () => {
    const deployed = await runCli(['token', 'deploy', '--rpc-url', anvil.url, '--supply', '5000', '--symbol', 'TST'], { GRIDX_TREASURY_KEY: TREASURY_KEY });
    expect(deployed.code).toBe(0);
    const address = /^token (0x[0-9a-fA-F]{40}) deployed in block (\d+)/m.exec(deployed.stdout)?.[1] as `0x${string}`;
    expect(address).toBeDefined();
    expect(await anvil.balanceOf(address, addressOf(TREASURY_KEY))).toBe(5000n * C);
    expect(deployed.stdout).toContain(`GRIDX_TOKEN_ADDRESS=${address}`);
    expect(deployed.stdout + deployed.stderr).not.toContain(TREASURY_KEY.slice(2));
    const refused = await runCli(['token', 'deploy', '--rpc-url', 'http://127.0.0.1:1'], { GRIDX_TREASURY_KEY: TREASURY_KEY });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('does not answer');
  });
});
