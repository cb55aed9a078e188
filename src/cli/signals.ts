import type { Logger } from '../logger.js';

/** Resolves on the first SIGINT or SIGTERM, after logging what stopping does. */
export function waitForSignal(log: Logger, stopping: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info(`${signal}: ${stopping}`);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
