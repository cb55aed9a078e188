/** gridx runner: pull work from a server and run it in the Docker sandbox. */

import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { invalid, quote } from '../errors.js';
import { openLogger } from '../logger.js';
import { NoopExecutor } from '../executor/noop/noop-executor.js';
import { GridxRunner } from '../node/runner.js';
import { waitForSignal } from './signals.js';

export const RUNNER_USAGE = `usage: gridx runner --server URL --key KEY [--slots N] [--data-dir DIR] [--name NAME]
                    [--label KEY=VALUE]... [--config FILE] [--log-level LEVEL] [--log-format text|json]

Pulls jobs from a gridx server (outbound HTTP only) and runs them in the hardened Docker
sandbox, at most --slots at once (default: the CPUs). Its id and secret are kept in
--data-dir (default ~/.gridx-runner). Per-job limits come from runner.docker.* in
--config or GRIDX_* variables, as for a node; the server sends only jobs that fit them.
--key (or GRIDX_KEY) is the account key it registers with (gridx account create --kind
runner on the server); what it earns is paid to that account. Results are signed with a key
of its own, kept with its id.`;

export async function runnerCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      server: { type: 'string' },
      key: { type: 'string' },
      slots: { type: 'string' },
      'data-dir': { type: 'string' },
      name: { type: 'string' },
      label: { type: 'string', multiple: true },
      config: { type: 'string' },
      'log-level': { type: 'string' },
      'log-format': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(RUNNER_USAGE);
    return 0;
  }
  const server = values.server ?? env.GRIDX_SERVER;
  if (!server) throw invalid('--server', `is required: the URL of a gridx server, such as http://127.0.0.1:8080\n\n${RUNNER_USAGE}`);
  if (!/^https?:\/\/\S+$/.test(server)) throw invalid('--server', `expected an http(s) URL, got ${quote(server)}`);
  const labels: Record<string, string> = {};
  for (const label of values.label ?? []) {
    const eq = label.indexOf('=');
    if (eq <= 0) throw invalid('--label', `expected KEY=VALUE, got ${quote(label)}`);
    labels[label.slice(0, eq)] = label.slice(eq + 1);
  }
  const config = loadConfig({
    file: values.config ?? env.GRIDX_CONFIG,
    env,
    flags: { slots: values.slots, dataDir: values['data-dir'] },
    defaults: { dataDir: path.join(os.homedir(), '.gridx-runner') },
  });
  const log = openLogger({ level: values['log-level'] ?? env.GRIDX_LOG_LEVEL, format: values['log-format'] ?? env.GRIDX_LOG_FORMAT });
  const runner = new GridxRunner({
    config,
    serverUrl: server.replace(/\/+$/, ''),
    labels,
    log,
    ...(values.name ? { name: values.name } : {}),
    ...((values.key ?? env.GRIDX_KEY) ? { accountKey: values.key ?? env.GRIDX_KEY } : {}),
    // For benchmarks of the queue (bench/queue.ts --only fleet): every job "runs" at once, no Docker.
    ...(env.GRIDX_BENCH_EXECUTOR === 'noop' ? { executor: () => new NoopExecutor({ output: 'ok\n' }) } : {}),
  });
  await runner.start();
  console.log(`Grid-X runner ${runner.id} working for ${server}`);
  console.log(`  slots ${config.slots}, data dir ${config.dataDir}`);
  await waitForSignal(log, 'stopping; running jobs are stopped and given back to the server');
  await runner.stop();
  log.info('stopped');
  return 0;
}
