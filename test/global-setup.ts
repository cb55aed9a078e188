import { execFileSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { connectDocker, ensureLocalImage } from '../src/executor/docker/engine.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the throwaway PostgreSQL server scripts/postgres.sh started. */
    pgUrl: string;
  }
}

/** Every run needs the engine, the local test image and PostgreSQL; fail at once, clearly, if not. */
export default async function setup(project: TestProject): Promise<void> {
  const docker = await connectDocker(process.env.GRIDX_DOCKER_SOCKET ?? '/var/run/docker.sock');
  await ensureLocalImage(docker);
  const pgUrl = execFileSync('bash', ['scripts/postgres.sh'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  project.provide('pgUrl', pgUrl);
}
