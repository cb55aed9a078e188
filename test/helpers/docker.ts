import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { DockerExecutor, type DockerExecutorOptions } from '../../src/executor/docker/docker-executor.js';
import { LABELS } from '../../src/executor/docker/sandbox.js';
import { silentLogger } from '../../src/logger.js';

export const docker = new Docker({ socketPath: process.env.GRIDX_DOCKER_SOCKET ?? '/var/run/docker.sock' });

/** Containers (any state) labelled as belonging to `nodeId`. */
export async function containersOf(nodeId: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${nodeId}`] } });
}

export async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs}ms; last value: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A Docker executor without a node around it, for checks below the API: a runner's or a
 * peer's spec reaches the executor without passing this node's submit.
 */
export function directExecutor(options: Partial<DockerExecutorOptions> = {}): DockerExecutor {
  return new DockerExecutor({
    docker,
    nodeId: `test-${randomUUID().slice(0, 8)}`,
    user: '65534:65534',
    pidsLimit: 64,
    tmpfsBytes: 16 * 1024 * 1024,
    outputLimitBytes: 1024 * 1024,
    pullTimeoutMs: 20_000,
    registries: ['docker.io'],
    volumes: { allowedVolumes: [], writableVolumes: false },
    log: silentLogger,
    ...options,
  });
}
