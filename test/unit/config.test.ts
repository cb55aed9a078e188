import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { SETTINGS, type Setting } from '../../src/config/schema.js';
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
    [{ env: { GRIDX_USER: '0:0' } }, 'env GRIDX_USER: expected a non-root uid or uid:gid in decimal'],
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

/** The message of the error `fn` throws (a CONFIG_INVALID GridxError). */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GridxError);
    expect((err as GridxError).code).toBe('CONFIG_INVALID');
    return (err as GridxError).message;
  }
  throw new Error('expected a CONFIG_INVALID error');
}

describe('runner.docker.user', () => {
  // uid 0 or gid 0 is root (or root's group) however it is spelled; ids past 2^32 - 2 do not exist.
  it.each(['0', '00', '0:0', '00:0', '0:5', '5:0', '1000:0', '000:65534', '1000:000', '4294967295', '1:4294967295', '99999999999999999999', '99999999999999999999999:1', '-1', '1000:-1', '1e3', '0x3e8', '1000:', ':1000', '1000:1000:1000', 'nobody', '１０００', ''])(
    'refuses %j from the environment',
    (user) => {
      expect(configError(() => loadConfig({ env: { GRIDX_USER: user } }))).toContain('env GRIDX_USER: expected a non-root uid or uid:gid in decimal');
    },
  );

  it.each(['0', '00', '"00:0"', '"5:0"', '"000:65534"', '-1', '1.5', '4294967295', '1e30', '[1000]'])('refuses user: %s in YAML', (yaml) => {
    const file = tempFile(`runner: {docker: {user: ${yaml}}}\n`);
    expect(configError(() => loadConfig({ file }))).toContain(`runner.docker.user in ${file}: expected a non-root uid or uid:gid`);
  });

  it.each([
    ['1000', '1000:1000'],
    ['0001000:1000', '1000:1000'],
    ['1000:0001', '1000:1'],
    [' 65534:65534 ', '65534:65534'],
    ['4294967294:4294967294', '4294967294:4294967294'],
  ])('reads %j as %j: always uid:gid, gid = uid when only the uid is given', (user, expected) => {
    expect(loadConfig({ env: { GRIDX_USER: user } }).sandbox.user).toBe(expected);
  });

  it('reads a YAML number as a uid', () => {
    expect(loadConfig({ file: tempFile('runner: {docker: {user: 1000}}\n') }).sandbox.user).toBe('1000:1000');
    expect(loadConfig({ file: tempFile('runner: {docker: {user: "2000:3000"}}\n') }).sandbox.user).toBe('2000:3000');
  });
});

describe('config file keys', () => {
  it.each([
    ['flat', 'runner.docker.pid_limit: 64\n', 'runner.docker.pid_limit', 'runner.docker.pids_limit'],
    ['nested', 'runner:\n  docker:\n    pid_limit: 64\n', 'runner.docker.pid_limit', 'runner.docker.pids_limit'],
    ['half flat', 'runner.docker:\n  pid_limit: 64\n', 'runner.docker.pid_limit', 'runner.docker.pids_limit'],
    ['a misspelled group', 'runner:\n  dockr:\n    pids_limit: 64\n', 'runner.dockr', 'runner.docker'],
    ['a misspelled section', 'setlement:\n  enabled: false\n', 'setlement', 'settlement'],
    ['at the wrong depth', 'pids_limit: 64\n', 'pids_limit', 'runner.docker.pids_limit'],
    ['cut short', 'runner: {docker: {memory: 1g}}\n', 'runner.docker.memory', 'runner.docker.memory_limit'],
    ['with dashes', 'node: {api-port: 9000}\n', 'node.api-port', 'node.api_port'],
    ['under the image lists', 'runner: {docker: {images: {alow: [alpine]}}}\n', 'runner.docker.images.alow', 'runner.docker.images.allow'],
    ['a trust setting', 'api: {cors_origin: []}\n', 'api.cors_origin', 'api.cors_origins'],
    ['a ledger setting', 'settlement: {treasury: x}\n', 'settlement.treasury', 'settlement.treasury_key'],
  ])('refuses an unknown key, %s, naming the closest known one', (_, yaml, key, closest) => {
    const file = tempFile(yaml);
    expect(configError(() => loadConfig({ file }))).toBe(`unknown setting ${key} in ${file}; did you mean ${closest}?`);
  });

  it('names the nearest setting even when nothing is close', () => {
    const file = tempFile('colour: blue\n');
    expect(configError(() => loadConfig({ file }))).toMatch(/^unknown setting colour in .*; no setting is spelled like it \(the nearest is [\w.]+\)/);
  });

  it('refuses a value where a group of settings belongs', () => {
    const file = tempFile('runner:\n  docker:\n    images: [alpine]\n');
    expect(configError(() => loadConfig({ file }))).toContain(`runner.docker.images in ${file} is a group of settings such as runner.docker.images.allow, not a value`);
    expect(configError(() => loadConfig({ file: tempFile('runner: {docker: 5}\n') }))).toContain('runner.docker in');
  });

  it('refuses a setting written twice, nested and dotted', () => {
    const file = tempFile('runner.docker.pids_limit: 64\nrunner:\n  docker:\n    pids_limit: 32\n');
    expect(configError(() => loadConfig({ file }))).toContain('runner.docker.pids_limit is set twice');
  });

  it('takes a map under a list setting as its value, for the setting to refuse, not as unknown keys', () => {
    const file = tempFile('runner: {docker: {networks: {bridge: true}}}\n');
    expect(configError(() => loadConfig({ file }))).toBe(`runner.docker.networks in ${file}: expected a list of Docker network modes, got {"bridge":true}`);
  });

  it('reads empty sections, mixed spellings and the image lists', () => {
    expect(loadConfig({ file: tempFile('node:\nrunner:\n  docker:\n') }).sandbox.pidsLimit).toBe(256);
    const config = loadConfig({ file: tempFile('runner.docker:\n  pids_limit: 64\n  images: {allow: [alpine], deny: [busybox]}\nnode: {slots: 2}\n') });
    expect(config.sandbox).toMatchObject({ pidsLimit: 64, allowImages: ['alpine'], denyImages: ['busybox'] });
    expect(config.slots).toBe(2);
  });

  it('knows every setting, nested and flat', () => {
    const keys = Object.values(SETTINGS as Record<string, Setting<unknown>>).flatMap((s) => [s.key, ...(s.aliases ?? [])]);
    expect(keys).toContain('settlement.treasury_key'); // LEDGER_SETTINGS
    expect(keys).toContain('mesh.accept'); // TRUST_SETTINGS
    for (const key of keys) {
      const nested = key
        .split('.')
        .reduceRight<unknown>((value, part) => ({ [part]: value }), '?');
      for (const yaml of [`${key}: "?"\n`, JSON.stringify(nested)]) {
        let message = '';
        try {
          loadConfig({ file: tempFile(yaml) });
        } catch (err) {
          message = (err as Error).message;
        }
        expect(message, yaml).not.toContain('unknown setting');
        expect(message, yaml).not.toContain('group of settings');
      }
    }
  });

  it("loads the README's example file", () => {
    const readme = fs.readFileSync(path.join(import.meta.dirname, '../../README.md'), 'utf8');
    const example = /### Configuration[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example).toContain('runner:');
    expect(loadConfig({ file: tempFile(example!) }).sandbox.user).toBe('65534:65534');
  });
});

describe('error messages about config', () => {
  it('quote at most 200 characters of a bad value', () => {
    const huge = 'x'.repeat(100_000);
    const fromFile = configError(() => loadConfig({ file: tempFile(`runner: {docker: {memory_limit: "${huge}"}}\n`) }));
    const fromEnv = configError(() => loadConfig({ env: { GRIDX_MEMORY_LIMIT: huge } }));
    const list = configError(() => loadConfig({ file: tempFile(`runner: {docker: {networks: {${'k'.repeat(50_000)}: 1}}}\n`) }));
    for (const message of [fromFile, fromEnv, list]) {
      expect(message.length).toBeLessThan(400);
      expect(message).toMatch(/got "?[xk{"]+…$/);
    }
  });

  it('quote at most 200 characters of an unknown key', () => {
    const message = configError(() => loadConfig({ file: tempFile(`${'k'.repeat(1000)}: 1\n`) }));
    expect(message.length).toBeLessThan(400);
    expect(message).toContain('unknown setting "kkkk');
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
