import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';

export const CLI = path.resolve('dist/src/cli/main.js');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The first of `count` consecutive free ports (gridx devnet takes P, P+1, …). */
export async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const free = await Promise.all(Array.from({ length: count }, (_, i) => portFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no run of ${count} free ports found`);
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export interface NodeProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts `gridx node` as its own process and waits until it says where it listens. */
export async function spawnNode(
  dataDir: string,
  extra: string[] = [],
  role: 'node' | 'server' = 'node',
  env: Record<string, string> = {},
  /** The API port; a free one when absent (a restart passes the one it had). */
  port?: number,
): Promise<NodeProcess> {
  port ??= await freePort();
  const p2p = extra.includes('--p2p-port') || extra.includes('--no-mesh') ? [] : ['--p2p-port', '0'];
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, role, '--api-port', String(port), '--data-dir', dataDir, ...p2p, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  // Ready once it has said where it listens and, with a mesh, how it joined.
  const ready = () => out.includes('listening on') && (extra.includes('--no-mesh') || /first node of a new mesh|joining through/.test(out));
  while (!ready()) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`node did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url: `http://127.0.0.1:${port}`, output: () => out, exited };
}

/** Starts `gridx runner` as its own process and waits until it has registered. */
export async function spawnRunner(serverUrl: string, dataDir: string, extra: string[] = []): Promise<NodeProcess & { id: string }> {
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, 'runner', '--server', serverUrl, '--data-dir', dataDir, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  let match: RegExpExecArray | null;
  while (!(match = /runner (\S+) working for/.exec(out))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`runner did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url: serverUrl, output: () => out, exited, id: match[1]! };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `gridx account create` (and `credit`) on a server's store, as an operator does: the new id and key. */
export async function cliAccount(
  storeArgs: string[],
  options: { name?: string; kind?: 'user' | 'runner'; credit?: string } = {},
): Promise<{ id: string; key: string }> {
  const created = await runCli(['account', 'create', '--name', options.name ?? 'e2e', '--kind', options.kind ?? 'user', ...storeArgs]);
  const id = /^account (\S+)/m.exec(created.stdout)?.[1];
  const key = /^key\s+(\S+)/m.exec(created.stdout)?.[1];
  if (created.code !== 0 || !id || !key) throw new Error(`gridx account create failed: ${created.stdout}${created.stderr}`);
  if (options.credit) {
    const credited = await runCli(['account', 'credit', id, options.credit, ...storeArgs]);
    if (credited.code !== 0) throw new Error(`gridx account credit failed: ${credited.stderr}`);
  }
  return { id, key };
}
