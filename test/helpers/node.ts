import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import type { Overrides } from '../../src/config/schema.js';
import type { Executor } from '../../src/executor/executor.js';
import { createLogger, silentLogger } from '../../src/logger.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { GridxNode } from '../../src/node/node.js';
import { GridxRunner } from '../../src/node/runner.js';
import { GridxClient } from '../../src/sdk/client.js';
import { parseAmount } from '../../src/domain/amount.js';

export interface TestNode {
  node: GridxNode;
  client: GridxClient;
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

export function tempDir(prefix = 'gridx-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A real node on loopback with a fresh data dir; Docker unless an executor is given. */
export async function startTestNode(
  options: { flags?: Overrides; env?: Record<string, string>; executor?: Executor; dataDir?: string } = {},
): Promise<TestNode> {
  const dataDir = options.dataDir ?? tempDir();
  const config = loadConfig({
    env: options.env ?? {},
    flags: { slots: 2, meshEnabled: false, p2pPort: 0, ...options.flags, dataDir, apiPort: 0, host: '127.0.0.1' },
  });
  const node = new GridxNode({
    config,
    log: process.env.GRIDX_TEST_LOG ? createLogger('debug') : silentLogger,
    detectGpus: false,
    ...(options.executor ? { executor: options.executor } : {}),
  });
  const url = await node.start();
  return { node, client: new GridxClient(url), url, dataDir, stop: () => node.stop() };
}

/** A node that joins (or, without bootstrap, starts) a mesh on loopback. */
export async function startMeshNode(
  options: { bootstrap?: string[]; flags?: Overrides; env?: Record<string, string>; executor?: Executor; dataDir?: string } = {},
): Promise<TestNode> {
  return startTestNode({
    ...options,
    flags: { meshEnabled: true, p2pPort: 0, bootstrap: options.bootstrap ?? [], ...options.flags },
  });
}

/** A new account on the node's own store, credited with `credits`; its API key and an authenticated client. */
export async function fundedAccount(
  t: TestNode,
  credits = '1000',
  options: { kind?: 'user' | 'runner'; name?: string } = {},
): Promise<{ id: string; key: string; client: GridxClient }> {
  const { account, key } = await t.node.accounts!.create(options.kind ?? 'user', options.name ?? 'tester');
  if (credits !== '0') await t.node.ledger!.credit(account.id, parseAmount(credits, 'credits'), 'test credit');
  return { id: account.id, key, client: new GridxClient(t.url, { token: key }) };
}

/**
 * A GridxRunner in this process: the real runner code over HTTP, with a no-op executor that
 * "runs" each job for `delayMs` and prints "ok"; each executor it makes is pushed onto
 * `executors`, for assertions on what ran.
 */
export async function startNoopRunner(options: {
  serverUrl: string;
  slots: number;
  name: string;
  delayMs: number;
  accountKey?: string;
  executors?: NoopExecutor[];
}): Promise<GridxRunner> {
  const runner = new GridxRunner({
    config: loadConfig({ flags: { slots: options.slots, dataDir: tempDir('gridx-runner-') } }),
    serverUrl: options.serverUrl,
    name: options.name,
    ...(options.accountKey ? { accountKey: options.accountKey } : {}),
    log: process.env.GRIDX_TEST_LOG ? createLogger('debug') : silentLogger,
    executor: () => {
      const executor = new NoopExecutor({ delayMs: options.delayMs, output: 'ok\n' });
      options.executors?.push(executor);
      return executor;
    },
  });
  await runner.start();
  return runner;
}
