import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import type { Overrides } from '../config/schema.js';
import { openLogger } from '../logger.js';
import { GridxNode } from '../node/node.js';
import { waitForSignal } from './signals.js';

export const NODE_USAGE = `usage: gridx node [--api-port N] [--host ADDR] [--data-dir DIR] [--config FILE] [--slots N]
                  [--p2p-port N] [--p2p-host ADDR] [--bootstrap MULTIADDR]... [--no-mesh] [--db postgres://...]
                  [--log-level LEVEL] [--log-format text|json]

Runs a Grid-X node: the HTTP API (default http://127.0.0.1:8000), jobs in the Docker sandbox,
and a mesh peer (libp2p on port 8468). Without --bootstrap it starts a new mesh; others join
it with --bootstrap and one of the multiaddrs it prints.
Settings come from defaults, then --config FILE (YAML), then GRIDX_* variables, then flags.
Logs go to stderr as lines for people, or with --log-format json (GRIDX_LOG_FORMAT) one JSON
object per line for log collectors; --log-level is debug, info, warn, error or silent.`;

export const SERVER_USAGE = `usage: gridx server [the options of gridx node]

Runs a Grid-X coordinator: the same program as gridx node with its API on 8080 by
default, Parity's /api/tasks as its front door, and --db postgres://... for a shared queue.
Runners (gridx runner --server URL) pull its jobs under leases; --slots 0 leaves all the
work to them.`;

/** gridx server: Parity's coordinator role, the node with the API on 8080. */
export function serverCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return nodeCommand(argv, env, { role: 'server' });
}

export async function nodeCommand(argv: string[], env: NodeJS.ProcessEnv, options: { role?: 'node' | 'server' } = {}): Promise<number> {
  const role = options.role ?? 'node';
  const { values } = parseArgs({
    args: argv,
    options: {
      'api-port': { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      config: { type: 'string' },
      slots: { type: 'string' },
      'p2p-port': { type: 'string' },
      'p2p-host': { type: 'string' },
      db: { type: 'string' },
      bootstrap: { type: 'string', multiple: true },
      'no-mesh': { type: 'boolean' },
      'log-level': { type: 'string' },
      'log-format': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(role === 'server' ? SERVER_USAGE : NODE_USAGE);
    return 0;
  }
  const flags: Overrides = {
    apiPort: values['api-port'],
    host: values.host,
    dataDir: values['data-dir'],
    slots: values.slots,
    p2pPort: values['p2p-port'],
    p2pHost: values['p2p-host'],
    db: values.db,
    bootstrap: values.bootstrap,
    meshEnabled: values['no-mesh'] ? false : undefined,
  };
  const config = loadConfig({
    file: values.config ?? env.GRIDX_CONFIG,
    env,
    flags,
    ...(role === 'server' ? { defaults: { apiPort: 8080, auth: 'required' } } : {}),
  });
  const log = openLogger({ level: values['log-level'] ?? env.GRIDX_LOG_LEVEL, format: values['log-format'] ?? env.GRIDX_LOG_FORMAT });
  // Fault injection for the settlement crash test: die right after a withdrawal is broadcast.
  const afterBroadcast = env.GRIDX_FAULT === 'crash-after-broadcast' ? () => process.kill(process.pid, 'SIGKILL') : undefined;
  // Fault injection for the clock test: this process's clock (Date.now) runs off by this many ms.
  const skew = Number(env.GRIDX_FAULT_CLOCK_SKEW_MS ?? 0);
  if (Number.isFinite(skew) && skew !== 0) {
    const real = Date.now.bind(Date);
    Date.now = () => real() + skew;
  }
  const node = new GridxNode({ config, log, ...(afterBroadcast ? { afterBroadcast } : {}) });
  const url = await node.start();
  console.log(`Grid-X ${role} ${node.id} listening on ${url}`);
  console.log(`  slots ${config.slots}, ${config.db ? 'jobs in PostgreSQL' : `data dir ${config.dataDir}`}`);
  console.log(
    config.auth === 'required'
      ? '  writes need an account key (gridx account create); settlement ' + (config.settlement.enabled ? `on, token ${config.settlement.token}` : 'off (credits only)')
      : '  open API on loopback: anonymous jobs accepted; rewards need an account key',
  );
  const mesh = node.peerMesh;
  if (mesh) {
    console.log(`  peer id ${mesh.peerId}`);
    for (const addr of mesh.multiaddrs) console.log(`  p2p ${addr}`);
    console.log(
      config.mesh.bootstrap.length === 0
        ? `  first node of a new mesh; join it with: gridx node --bootstrap ${mesh.multiaddrs[0] ?? '<multiaddr>'}`
        : `  joining through ${config.mesh.bootstrap.join(', ')}`,
    );
  }
  console.log(`  try: curl -s ${url}/status   or   gridx run --node ${url} IMAGE -- CMD`);

  await waitForSignal(log, 'stopping; running jobs are stopped and requeued');
  await node.stop().catch((err: unknown) => log.error(`stop failed: ${String(err)}`));
  log.info('stopped');
  return 0;
}
