/**
 * The throwaway PostgreSQL server of the tests and benchmarks (scripts/postgres.sh), started
 * when it is not running; `stop` stops it only if this process started it, so a run leaves
 * running what it found running and nothing else. The test run's global setup uses it too.
 */

import { execFileSync } from 'node:child_process';

export interface TestPostgres {
  url: string;
  stop(): void;
}

export function openTestPostgres(env: NodeJS.ProcessEnv = process.env): TestPostgres {
  const script = (...args: string[]) => execFileSync('bash', ['scripts/postgres.sh', ...args], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] });
  let wasRunning = true;
  try {
    script('status');
  } catch {
    wasRunning = false;
  }
  const url = script().trim().split('\n').at(-1)!;
  return {
    url,
    stop: () => {
      if (!wasRunning) script('stop');
    },
  };
}
