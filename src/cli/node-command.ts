import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import type { Overrides } from '../config/schema.js';
import { createLogger, type LogLevel } from '../logger.js';
import { GridxNode } from '../node/node.js';

export const NODE_USAGE = `usage: gridx node [--api-port N] [--host ADDR] [--data-dir DIR] [--config FILE] [--slots N] [--log-level LEVEL]

Runs a Grid-X node: the HTTP API (default http://127.0.0.1:8000) and jobs in the Docker sandbox.
Settings come from defaults, then --config FILE (YAML), then GRIDX_* variables, then flags.`;

export async function nodeCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'api-port': { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      config: { type: 'string' },
      slots: { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(NODE_USAGE);
    return 0;
  }
  const flags: Overrides = {
    apiPort: values['api-port'],
    host: values.host,
    dataDir: values['data-dir'],
    slots: values.slots,
  };
  const config = loadConfig({ file: values.config ?? env.GRIDX_CONFIG, env, flags });
  const level = (values['log-level'] ?? env.GRIDX_LOG_LEVEL ?? 'info') as LogLevel;
  const log = createLogger(level);
  const node = new GridxNode({ config, log });
  const url = await node.start();
  console.log(`Grid-X node ${node.id} listening on ${url}`);
  console.log(`  slots ${config.slots}, data dir ${config.dataDir}`);
  console.log(`  try: curl -s ${url}/status   or   gridx run --node ${url} IMAGE -- CMD`);

  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info(`${signal}: stopping; running jobs are stopped and requeued`);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      node.stop().then(resolve, (err: unknown) => {
        log.error(`stop failed: ${String(err)}`);
        resolve();
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  log.info('stopped');
  return 0;
}
