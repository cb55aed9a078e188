import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { openTestPostgres } from '../bench/test-postgres.js';
import { connectDocker, ensureLocalImage } from '../src/executor/docker/engine.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the throwaway PostgreSQL server scripts/postgres.sh started. */
    pgUrl: string;
  }
}

/**
 * Every run needs the engine, the local test image and PostgreSQL; fail at once, clearly, if
 * not. A PostgreSQL server this run started is stopped when it ends; one that was already
 * running (a developer's, a benchmark's) is left as it was.
 */
export default async function setup(project: TestProject): Promise<() => void> {
  const docker = await connectDocker(process.env.GRIDX_DOCKER_SOCKET ?? '/var/run/docker.sock');
  await ensureLocalImage(docker);
  const postgres = openTestPostgres();
  project.provide('pgUrl', postgres.url);
  return () => {
    unmountLeftVolumes();
    postgres.stop();
  };
}

/**
 * A node or runner a test SIGKILLs and never restarts on its data dir leaves its jobs'
 * /outputs volumes mounted (a restart would reap them). Unmount those under the temporary
 * dirs tests make, so a run leaves no mounts or loop devices behind.
 */
function unmountLeftVolumes(): void {
  const tmp = path.join(os.tmpdir(), 'gridx-');
  for (const line of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const target = line.split(' ')[1]?.replace(/\\040/g, ' ');
    if (!target?.startsWith(tmp) || !/\/outputs\/[^/]+$/.test(target)) continue;
    try {
      execFileSync('umount', ['-l', target], { stdio: 'ignore' });
    } catch {
      // gone meanwhile
    }
  }
}
