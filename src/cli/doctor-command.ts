/**
 * `gridx doctor`: checks what a node needs on this machine, each check with the fix when it
 * fails: the Docker engine, the sandbox (a real hardened container), free API and p2p
 * ports, the data dir, PostgreSQL and the chain where configured, reachable bootstrap peers,
 * and the clock. Exit 0 when nothing failed, 1 otherwise.
 */

import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { multiaddr } from '@multiformats/multiaddr';
import pg from 'pg';
import { createPublicClient, http } from 'viem';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { normalizeSpec } from '../domain/spec.js';
import { messageOf } from '../errors.js';
import { LOCAL_IMAGE, connectDocker, ensureLocalImage, openDockerExecutor } from '../executor/docker/engine.js';
import { errorKind } from '../ledger/chain.js';
import { silentLogger } from '../logger.js';

export const DOCTOR_USAGE = `usage: gridx doctor [--config FILE] [--data-dir DIR] [--api-port N] [--p2p-port N] [--host ADDR]
                    [--db postgres://...] [--bootstrap MULTIADDR]...

Checks this machine for running a node with these settings (the same flags and GRIDX_*
variables as gridx node): the Docker engine, the sandbox (runs a real hardened container),
free API and p2p ports, the data dir, PostgreSQL and the chain where configured, reachable
bootstrap peers, and the clock. Each failed check says how to fix it; exit 1 if any failed.`;

type Verdict = { state: 'ok' | 'skip'; detail: string } | { state: 'fail'; detail: string; fix: string };

interface Check {
  name: string;
  run: () => Promise<Verdict>;
}

/** A clock further than this from the database's is reported: leases are compared in the database's clock. */
const CLOCK_TOLERANCE_MS = 2000;
const CONNECT_TIMEOUT_MS = 3000;

export async function doctorCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      'api-port': { type: 'string' },
      'p2p-port': { type: 'string' },
      host: { type: 'string' },
      db: { type: 'string' },
      bootstrap: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(DOCTOR_USAGE);
    return 0;
  }
  const config = loadConfig({
    file: values.config ?? env.GRIDX_CONFIG,
    env,
    flags: {
      dataDir: values['data-dir'],
      apiPort: values['api-port'],
      p2pPort: values['p2p-port'],
      host: values.host,
      db: values.db,
      bootstrap: values.bootstrap,
    },
  });
  console.log(`gridx doctor: checking this machine for a node with data dir ${config.dataDir}`);
  let failed = 0;
  for (const check of checks(config)) {
    const verdict = await check.run().catch((err: unknown): Verdict => ({ state: 'fail', detail: messageOf(err), fix: 'see the message' }));
    console.log(`  ${verdict.state.toUpperCase().padEnd(5)} ${check.name.padEnd(16)} ${verdict.detail}`);
    if (verdict.state === 'fail') {
      failed++;
      console.log(`${' '.repeat(25)}fix: ${verdict.fix}`);
    }
  }
  console.log(failed === 0 ? 'everything checked is ready' : `${failed} check${failed === 1 ? '' : 's'} failed`);
  return failed === 0 ? 0 : 1;
}

function checks(config: Readonly<Config>): Check[] {
  const dockerFix = 'start the engine (as root, `bash scripts/setup.sh` installs and starts one; or `systemctl start docker`), or set GRIDX_DOCKER_SOCKET';
  return [
    {
      name: 'Docker engine',
      run: async () => {
        try {
          const docker = await connectDocker(config.dockerSocket);
          const version = await docker.version();
          return { state: 'ok', detail: `Docker ${version.Version} (API ${version.ApiVersion}) at ${config.dockerSocket}` };
        } catch (err) {
          return { state: 'fail', detail: messageOf(err).split('. ')[0]!, fix: dockerFix };
        }
      },
    },
    {
      name: 'sandbox',
      run: async () => {
        const docker = await connectDocker(config.dockerSocket).catch(() => undefined);
        if (!docker) return { state: 'fail', detail: 'no Docker engine to run it in', fix: dockerFix };
        await ensureLocalImage(docker);
        const executor = await openDockerExecutor(config, `doctor-${randomUUID().slice(0, 8)}`, silentLogger);
        const started = performance.now();
        const executionId = randomUUID();
        try {
          const spec = normalizeSpec({ image: LOCAL_IMAGE, command: 'echo sandbox-ok', timeout: '30s' }, { ...config.sandbox, maxGpus: 0 });
          await executor.start({ executionId, jobId: 'doctor', spec });
          const result = await executor.wait(executionId);
          if (result.exitCode !== 0 || result.stdout.trim() !== 'sandbox-ok') {
            return { state: 'fail', detail: `the test container exited ${result.exitCode ?? '?'}: ${(result.stderr || result.stdout).trim().slice(0, 200)}`, fix: 'see the engine\'s log (journalctl -u docker, or the dockerd output)' };
          }
          return {
            state: 'ok',
            detail: `a container ran under the node's hardening (no network, read-only root, all capabilities dropped, limits) in ${Math.round(performance.now() - started)} ms`,
          };
        } finally {
          await executor.stop();
        }
      },
    },
    portCheck('API port', config.host, config.apiPort, '--api-port (node.api_port)'),
    portCheck('p2p port', config.mesh.p2pHost ?? config.host, config.mesh.p2pPort, '--p2p-port (mesh.p2p_port)', !config.mesh.enabled),
    {
      name: 'data dir',
      run: async () => {
        try {
          fs.mkdirSync(config.dataDir, { recursive: true });
          const probe = path.join(config.dataDir, `.doctor-${process.pid}`);
          fs.writeFileSync(probe, 'ok');
          fs.rmSync(probe);
          const { bavail, bsize } = fs.statfsSync(config.dataDir);
          return { state: 'ok', detail: `${config.dataDir} is writable, ${Math.floor((bavail * bsize) / 1024 ** 3)} GiB free` };
        } catch (err) {
          return { state: 'fail', detail: `${config.dataDir}: ${messageOf(err)}`, fix: 'pick a directory this user may write with --data-dir (node.data_dir), or fix its permissions' };
        }
      },
    },
    ...databaseChecks(config),
    {
      name: 'chain',
      run: async () => {
        if (!config.settlement.enabled || !config.settlement.rpcUrl) return { state: 'skip', detail: 'settlement is off (settlement.enabled)' };
        try {
          const client = createPublicClient({ transport: http(config.settlement.rpcUrl.reveal(), { retryCount: 0, timeout: CONNECT_TIMEOUT_MS }) });
          const [id, block] = await Promise.all([client.getChainId(), client.getBlockNumber()]);
          return { state: 'ok', detail: `chain ${id} answers, at block ${block}` };
        } catch (err) {
          return { state: 'fail', detail: `the RPC endpoint does not answer (${errorKind(err)})`, fix: 'check settlement.rpc_url (GRIDX_RPC_URL) and that the chain node runs' };
        }
      },
    },
    {
      name: 'bootstrap peers',
      run: async () => {
        if (!config.mesh.enabled) return { state: 'skip', detail: 'the mesh is off (--no-mesh)' };
        if (config.mesh.bootstrap.length === 0) return { state: 'skip', detail: 'none configured: this node starts a new mesh' };
        const unreachable: string[] = [];
        for (const address of config.mesh.bootstrap) {
          const problem = await dialable(address);
          if (problem) unreachable.push(`${address} (${problem})`);
        }
        if (unreachable.length === 0) return { state: 'ok', detail: `${config.mesh.bootstrap.length} reachable over TCP` };
        return {
          state: 'fail',
          detail: `${unreachable.length} of ${config.mesh.bootstrap.length} unreachable: ${unreachable.join('; ')}`,
          fix: 'check that those nodes run and listen there (gridx status on them prints their multiaddrs), or pass others with --bootstrap',
        };
      },
    },
  ];
}

/** Whether `host:port` can be bound now (port 0: any free port will do). */
function portCheck(name: string, host: string, port: number, flag: string, off = false): Check {
  return {
    name,
    run: async () => {
      if (off) return { state: 'skip', detail: 'the mesh is off (--no-mesh)' };
      if (port === 0) return { state: 'ok', detail: `any free port on ${host}` };
      const problem = await new Promise<string | undefined>((resolve) => {
        const server = net.createServer();
        server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE' ? 'in use (another gridx node?)' : err.code === 'EACCES' ? 'needs privileges (ports below 1024)' : messageOf(err)));
        server.listen(port, host, () => server.close(() => resolve(undefined)));
      });
      return problem
        ? { state: 'fail', detail: `${port} on ${host} is ${problem}`, fix: `pick another with ${flag}, or 0 for any free port; or stop what holds it` }
        : { state: 'ok', detail: `${port} on ${host} is free` };
    },
  };
}

/** PostgreSQL where --db names it, and the clock against its clock (leases are compared in it). */
function databaseChecks(config: Readonly<Config>): Check[] {
  if (!config.db) {
    return [
      { name: 'PostgreSQL', run: async () => ({ state: 'skip', detail: 'not configured (--db): jobs are kept in SQLite in the data dir' }) },
      { name: 'clock', run: async () => ({ state: 'skip', detail: 'no database to compare with; keep the system clock synchronized (NTP) all the same' }) },
    ];
  }
  const url = new URL(config.db);
  url.searchParams.delete('schema');
  let offsetMs: number | undefined;
  return [
    {
      name: 'PostgreSQL',
      run: async () => {
        const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
        try {
          await client.connect();
          const before = Date.now();
          const { rows } = await client.query<{ version: string; now_ms: string }>(`SELECT current_setting('server_version') AS version, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT::TEXT AS now_ms`);
          const after = Date.now();
          offsetMs = Number(rows[0]!.now_ms) - (before + after) / 2;
          return { state: 'ok', detail: `PostgreSQL ${rows[0]!.version} at ${url.host} answers` };
        } catch (err) {
          return { state: 'fail', detail: `${url.host}: ${messageOf(err)}`, fix: 'check --db (db, GRIDX_DB): host, port, user and database, and that PostgreSQL runs and accepts this user' };
        } finally {
          await client.end().catch(() => {});
        }
      },
    },
    {
      name: 'clock',
      run: async () => {
        if (offsetMs === undefined) return { state: 'skip', detail: 'the database did not answer' };
        const detail = `${Math.abs(Math.round(offsetMs))} ms ${offsetMs > 0 ? 'behind' : 'ahead of'} the database's`;
        return Math.abs(offsetMs) <= CLOCK_TOLERANCE_MS
          ? { state: 'ok', detail }
          : { state: 'fail', detail, fix: 'synchronize the clock (systemd-timesyncd, chrony or ntpd); leases are kept in the database\'s clock, but logs and epochs use this one' };
      },
    },
  ];
}

/** Why a bootstrap multiaddr cannot be dialled over TCP, if it cannot. */
async function dialable(address: string): Promise<string | undefined> {
  let host: string;
  let port: number;
  try {
    const parts = multiaddr(address).getComponents();
    const ip = parts.find((c) => ['ip4', 'ip6', 'dns4', 'dns6', 'dns'].includes(c.name));
    const tcp = parts.find((c) => c.name === 'tcp');
    if (!ip?.value || !tcp?.value) return 'not a TCP multiaddr';
    host = ip.value;
    port = Number(tcp.value);
  } catch (err) {
    return `not a multiaddr: ${messageOf(err)}`;
  }
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: CONNECT_TIMEOUT_MS });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}
