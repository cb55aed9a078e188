import Docker from 'dockerode';
import { LABELS } from '../../src/executor/docker/sandbox.js';

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
