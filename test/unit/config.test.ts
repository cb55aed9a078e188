import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { GridxError } from '../../src/errors.js';

function tempFile(content: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-config-'));
  const file = path.join(dir, 'gridx.yaml');
  fs.writeFileSync(file, content);
  return file;
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig();
    expect(config.apiPort).toBe(8000);
    expect(config.host).toBe('127.0.0.1');
    expect(config.dataDir).toBe(path.join(os.homedir(), '.gridx'));
    expect(config.slots).toBe(os.availableParallelism());
    expect(config).toMatchObject({ maxAttempts: 3, leaseTtlMs: 30_000, retryBackoffMs: 1000 });
    expect(config.sandbox).toMatchObject({
      memoryBytes: 512 * 1024 ** 2,
      cpus: 1,
      timeoutMs: 300_000,
      pidsLimit: 256,
      user: '65534:65534',
      allowedNetworks: ['none'],
    });
    expect(Object.isFrozen(config.sandbox)).toBe(true);
  });

  it("reads Parity's runner.docker keys from YAML, then env, then flags", () => {
    const file = tempFile(`
node:
  api_port: 9000
  slots: 3
runner:
  docker:
    memory_limit: 256m
    cpu_limit: 0.5
    timeout: 60
`);
    const fromFile = loadConfig({ file });
    expect(fromFile.apiPort).toBe(9000);
    expect(fromFile.sandbox.memoryBytes).toBe(256 * 1024 ** 2);
    expect(fromFile.sandbox.cpus).toBe(0.5);
    expect(fromFile.sandbox.timeoutMs).toBe(60_000);

    const withEnv = loadConfig({ file, env: { GRIDX_API_PORT: '9100', GRIDX_MEMORY_LIMIT: '128m' } });
    expect(withEnv.apiPort).toBe(9100);
    expect(withEnv.sandbox.memoryBytes).toBe(128 * 1024 ** 2);

    const withFlags = loadConfig({ file, env: { GRIDX_API_PORT: '9100' }, flags: { apiPort: '9200' } });
    expect(withFlags.apiPort).toBe(9200);
    expect(withFlags.slots).toBe(3);
  });

  it("applies a role's defaults below file, env and flags (gridx server: API on 8080)", () => {
    expect(loadConfig({ defaults: { apiPort: 8080 } }).apiPort).toBe(8080);
    expect(loadConfig({ defaults: { apiPort: 8080 }, env: { GRIDX_API_PORT: '9000' } }).apiPort).toBe(9000);
    expect(loadConfig({ defaults: { apiPort: 8080 }, file: tempFile('node: {api_port: 9100}') }).apiPort).toBe(9100);
    expect(loadConfig({ defaults: { apiPort: 8080 }, flags: { apiPort: 0 } }).apiPort).toBe(0);
  });

  it('reads a PostgreSQL URL for the store', () => {
    expect(loadConfig({ env: { GRIDX_DB: 'postgres://u@127.0.0.1:5432/db?schema=s' } }).db).toBe('postgres://u@127.0.0.1:5432/db?schema=s');
    expect(() => loadConfig({ env: { GRIDX_DB: 'mysql://x' } })).toThrow(/env GRIDX_DB: expected a postgres:\/\/ URL/);
  });

  it('accepts flat dotted keys too', () => {
    const config = loadConfig({ file: tempFile('runner.docker.pids_limit: 64\n') });
    expect(config.sandbox.pidsLimit).toBe(64);
  });

  it.each([
    [{ env: { GRIDX_API_PORT: 'eighty' } }, 'env GRIDX_API_PORT: expected a port number'],
    [{ env: { GRIDX_SLOTS: '-1' } }, 'env GRIDX_SLOTS: expected a whole number 0-1024'],
    [{ env: { GRIDX_USER: '0:0' } }, 'env GRIDX_USER: expected a numeric uid or uid:gid, never 0'],
    [{ flags: { timeoutMs: 'later' } }, 'flag for runner.docker.timeout'],
    [{ file: tempFile('runner: {docker: {memory_limit: lots}}') }, 'runner.docker.memory_limit in'],
    [{ file: tempFile('- a list') }, 'must hold a YAML mapping'],
    [{ file: tempFile('node: [unclosed') }, 'is not valid YAML'],
    [{ file: '/nonexistent/gridx.yaml' }, 'cannot read config file'],
  ])('refuses %j with a clear message', (options, message) => {
    let caught: unknown;
    try {
      loadConfig(options);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(GridxError);
    expect((caught as GridxError).code).toBe('CONFIG_INVALID');
    expect((caught as GridxError).message).toContain(message);
  });
});

describe('settlement settings', () => {
  const KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';
  const RPC = 'https://rpc.example.invalid/v1/secret-api-key';

  it('is off by default; on, it needs the RPC URL, the token and the treasury key', () => {
    expect(loadConfig().settlement.enabled).toBe(false);
    expect(() => loadConfig({ env: { GRIDX_SETTLEMENT: 'true', GRIDX_RPC_URL: RPC } })).toThrow(
      /settlement is enabled but settlement.token \(GRIDX_TOKEN_ADDRESS\), settlement.treasury_key \(GRIDX_TREASURY_KEY\) are not set/,
    );
  });

  it('never shows the treasury key or the RPC URL: not in the config printed, inspected, or in an error about them', () => {
    const config = loadConfig({
      env: { GRIDX_SETTLEMENT: 'true', GRIDX_RPC_URL: RPC, GRIDX_TOKEN_ADDRESS: `0x${'ab'.repeat(20)}`, GRIDX_TREASURY_KEY: KEY },
    });
    expect(config.settlement.treasuryKey?.reveal()).toBe(KEY);
    for (const shown of [JSON.stringify(config), inspect(config, { depth: 10 }), String(config.settlement.rpcUrl), `${config.settlement.treasuryKey}`]) {
      expect(shown).not.toContain(KEY.slice(2));
      expect(shown).not.toContain('secret-api-key');
    }
    const bad = `${KEY}00`;
    let message = '';
    try {
      loadConfig({ env: { GRIDX_TREASURY_KEY: bad } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('env GRIDX_TREASURY_KEY: expected a private key');
    expect(message).not.toContain(KEY.slice(2, 20));
  });

  it('reads the operator fee as a percentage', () => {
    expect(loadConfig({ env: { GRIDX_FEE: '2.5' } }).feeBasisPoints).toBe(250);
    expect(loadConfig({ env: { GRIDX_FEE: '0' } }).feeBasisPoints).toBe(0);
    expect(() => loadConfig({ env: { GRIDX_FEE: '60' } })).toThrow(/GRIDX_FEE: expected a percentage 0-50/);
    expect(() => loadConfig({ env: { GRIDX_FEE: '-1' } })).toThrow(/GRIDX_FEE/);
  });
});
