/**
 * gridx devnet: N real node processes on loopback, each with its own ports and data dir,
 * all joined through the first. For development and demos; Ctrl-C stops them all.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GridxError } from '../errors.js';
import { NODE_FLAGS } from './node-flags.js';
import { table, usageError } from './output.js';

export const DEVNET_USAGE = `usage: gridx devnet [--nodes N] [--slots N] [--api-port P] [--p2p-port P] [--data-dir DIR]

Starts N nodes (default 3): node i serves its API on P+i (default 8000+i) and libp2p on
p2p P+i (default 8468+i), keeps its data in DIR/node-i (default ~/.gridx/devnet), and
joins the mesh through node 0. Ctrl-C stops them all.`;

interface Child {
  index: number;
  process: ChildProcess;
  api: string;
  p2p?: string;
  peerId?: string;
}

export async function devnetCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      nodes: { type: 'string', default: '3' },
      slots: { type: 'string', default: '1' },
      'api-port': { type: 'string', default: '8000' },
      'p2p-port': { type: 'string', default: '8468' },
      'data-dir': { type: 'string', default: path.join(os.homedir(), '.gridx', 'devnet') },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(DEVNET_USAGE);
    return 0;
  }
  const count = Number(values.nodes);
  if (!Number.isInteger(count) || count < 1 || count > 100) throw usageError('gridx devnet: --nodes must be 1-100', DEVNET_USAGE);
  const apiBase = Number(values['api-port']);
  const p2pBase = Number(values['p2p-port']);
  const cli = fileURLToPath(new URL('./main.js', import.meta.url));

  const children: Child[] = [];
  const stopAll = async () => {
    for (const c of children) if (c.process.exitCode === null) c.process.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.process.exitCode === null ? new Promise((r) => c.process.once('exit', r)) : undefined)));
  };
  try {
    for (let i = 0; i < count; i++) {
      const dataDir = path.join(values['data-dir'], `node-${i}`);
      fs.mkdirSync(dataDir, { recursive: true });
      const args = [cli, 'node', '--api-port', String(apiBase + i), '--p2p-port', String(p2pBase + i), '--data-dir', dataDir, '--slots', values.slots];
      if (i > 0) args.push('--bootstrap', children[0]!.p2p!);
      children.push(await startChild(i, args, env));
    }
    console.log(
      table([
        ['NODE', 'API', 'PEER ID', 'P2P'],
        ...children.map((c) => [`node-${c.index}`, c.api, c.peerId ?? '?', c.p2p ?? '?']),
      ]),
    );
    console.log(`\n${count} nodes running. Try:\n  gridx run --node ${children[0]!.api} IMAGE -- CMD\n  gridx run --mesh --bootstrap ${children[0]!.p2p} IMAGE -- CMD\n  gridx peers --node ${children[0]!.api}\nCtrl-C stops them all.`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
      for (const c of children) {
        c.process.once('exit', (code) => {
          console.error(`gridx devnet: node-${c.index} exited (${code}); stopping the others`);
          resolve();
        });
      }
    });
    return 0;
  } finally {
    await stopAll();
  }
}

function startChild(index: number, args: string[], env: NodeJS.ProcessEnv): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const info: Child = { index, process: child, api: '' };
    const prefix = `[node-${index}] `;
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const api = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      const p2p = /p2p (\/ip4\/\S+)/.exec(out)?.[1];
      const peerId = /peer id (\S+)/.exec(out)?.[1];
      if (api && p2p && peerId && !info.api) {
        Object.assign(info, { api, p2p, peerId });
        child.stdout!.off('data', onData);
        child.stdout!.on('data', (c: Buffer) => process.stdout.write(prefix + c.toString()));
        resolve(info);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => {
      if (info.api) process.stderr.write(prefix + c.toString());
      else out += c.toString();
    });
    child.once('exit', (code) => {
      if (!info.api) reject(new GridxError('UNAVAILABLE', `node-${index} did not start (exit ${code}):\n${out.trim()}`));
    });
  });
}
