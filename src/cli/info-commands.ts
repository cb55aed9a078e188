/** gridx status and gridx jobs: read-only views of a node. */

import { parseArgs } from 'node:util';
import { GridxClient } from '../sdk/client.js';
import { formatSize } from '../domain/units.js';
import { clip, gib, table } from './output.js';
import type { NodeStatus } from '../wire/gridx.js';

const nodeOption = { node: { type: 'string' }, key: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;

/** A client of --node (or GRIDX_NODE), as the account of --key (or GRIDX_KEY) when given. */
export function clientFor(values: { node?: string; key?: string }, env: NodeJS.ProcessEnv): GridxClient {
  const key = values.key ?? env.GRIDX_KEY;
  return new GridxClient(values.node ?? env.GRIDX_NODE ?? 'http://127.0.0.1:8000', key ? { token: key } : {});
}

export const STATUS_USAGE = 'usage: gridx status [--node URL] [--json]';

export async function statusCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args: argv, options: nodeOption, strict: true });
  if (values.help) {
    console.log(STATUS_USAGE);
    return 0;
  }
  const client = clientFor(values, env);
  const s = await client.status();
  if (values.json) {
    console.log(JSON.stringify(s, null, 2));
    return 0;
  }
  const r = s.resources;
  console.log(
    table([
      ['node', `${s.nodeId} (gridx ${s.version}) at ${client.baseUrl}`],
      ['mesh', s.multiaddrs.length === 0 ? 'off' : `${s.peers} peers known, ${s.connections} connected; ${s.multiaddrs[0]}`],
      ...(s.reachability ? [['reachable', reachabilityLine(s.reachability)]] : []),
      ['status', s.status],
      ['slots', `${s.slots.used}/${s.slots.total} used`],
      ['queue', `${s.queue.pending} pending, ${s.queue.running} running`],
      ['cpu', `${r.cpus} cores, ${r.cpuLoadPercent}% busy`],
      ['memory', `${gib(r.memoryFreeBytes)} free of ${gib(r.memoryTotalBytes)}`],
      ['gpus', r.gpus.length === 0 ? 'none' : r.gpus.map((g) => g.name).join(', ')],
      ['per job', `${s.limits.cpus} cpus, ${s.limits.memory} memory, ${s.limits.timeout} time, network ${s.limits.networks.join('/')}`],
    ]),
  );
  return 0;
}

export const JOBS_USAGE = 'usage: gridx jobs [--node URL] [--key KEY] [--status STATUS] [--limit N] [--json]\n\nLists the jobs of the key\'s account (default $GRIDX_KEY) and the anonymous ones, newest first.';

export async function jobsCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...nodeOption, status: { type: 'string' }, limit: { type: 'string' } },
    strict: true,
  });
  if (values.help) {
    console.log(JOBS_USAGE);
    return 0;
  }
  const page = await clientFor(values, env).list({
    ...(values.status ? { status: values.status } : {}),
    ...(values.limit ? { limit: Number(values.limit) } : {}),
  });
  if (values.json) {
    console.log(JSON.stringify(page, null, 2));
    return 0;
  }
  if (page.jobs.length === 0) {
    console.log('no jobs');
    return 0;
  }
  console.log(
    table([
      ['ID', 'STATUS', 'EXIT', 'DURATION', 'CREATED', 'IMAGE', 'COMMAND'],
      ...page.jobs.map((j) => [
        j.id,
        j.status,
        j.exitCode === undefined ? '-' : String(j.exitCode),
        j.durationMs === undefined ? '-' : `${j.durationMs}ms`,
        j.createdAt.replace('T', ' ').slice(0, 19),
        j.image,
        clip(j.command.join(' '), 50),
      ]),
    ]),
  );
  return 0;
}

function reachabilityLine(r: NonNullable<NodeStatus['reachability']>): string {
  const relaying = r.relaying ? '; relays for peers behind NAT' : '';
  if (r.state === 'public') return `directly from outside its networks${relaying}`;
  if (r.state === 'local') return `on its own networks (no peer from outside yet)${relaying}`;
  return r.relays.length > 0 ? `through the relay ${r.relays.join(', ')} (behind NAT)` : 'not from outside its networks: behind NAT and no relay slot yet';
}

export const PEERS_USAGE = 'usage: gridx peers [--node URL] [--json]';

export async function peersCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args: argv, options: nodeOption, strict: true });
  if (values.help) {
    console.log(PEERS_USAGE);
    return 0;
  }
  const list = await clientFor(values, env).peers();
  if (values.json) {
    console.log(JSON.stringify(list, null, 2));
    return 0;
  }
  if (list.peers.length === 0) {
    console.log(`node ${list.peerId} knows no peers`);
    return 0;
  }
  console.log(
    table([
      ['PEER', 'STATUS', 'FREE', 'CPUS', 'PER JOB', 'PRICE', 'API', 'LINK'],
      ...list.peers.map(({ peerId, offer: o, connection }) => [
        peerId,
        o.status,
        `${o.slots.free}/${o.slots.total}`,
        String(o.cpus),
        `${o.limits.cpus} cpu, ${formatSize(o.limits.memoryBytes)}`,
        String(o.price),
        o.apiUrl,
        // Older nodes answer without `connection`.
        connection ?? 'none',
      ]),
    ]),
  );
  return 0;
}
