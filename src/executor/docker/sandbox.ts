/**
 * The hardened container definition. Pure: it maps a spec plus the node's sandbox policy
 * to Engine API create options, so every control is visible in one place and unit-tested;
 * the integration tests prove each one in a real container.
 */

import type Docker from 'dockerode';
import type { ExecutionRequest } from '../executor.js';

export interface SandboxSettings {
  /** uid:gid, never root. */
  user: string;
  pidsLimit: number;
  tmpfsBytes: number;
}

export const LABELS = {
  managed: 'io.gridx.managed',
  node: 'io.gridx.node',
  job: 'io.gridx.job',
  execution: 'io.gridx.execution',
} as const;

export function containerName(executionId: string): string {
  return `gridx-${executionId}`;
}

/** `fileBinds`: the execution's inputs and /outputs (ExecutionFiles.prepare). */
export function containerOptions(
  request: ExecutionRequest,
  settings: SandboxSettings,
  nodeId: string,
  fileBinds: readonly string[] = [],
): Docker.ContainerCreateOptions {
  const { spec } = request;
  const memory = spec.resources.memoryBytes;
  const hostConfig: Docker.HostConfig = {
    NetworkMode: spec.network,
    ReadonlyRootfs: true,
    Tmpfs: { '/tmp': `rw,nosuid,nodev,size=${settings.tmpfsBytes},mode=1777` },
    CapDrop: ['ALL'],
    // Docker's default seccomp profile applies because nothing here says "unconfined".
    SecurityOpt: ['no-new-privileges:true'],
    Privileged: false,
    Memory: memory,
    // Equal to Memory: no swap beyond the memory limit.
    MemorySwap: memory,
    NanoCpus: Math.round(spec.resources.cpus * 1e9),
    PidsLimit: settings.pidsLimit,
    IpcMode: 'private',
    // Output is read through attach; 'none' keeps a flood from filling the host's disk.
    LogConfig: { Type: 'none', Config: {} },
    Ulimits: [{ Name: 'nofile', Soft: 4096, Hard: 4096 }],
    Binds: [...spec.volumes.map((v) => `${v.hostPath}:${v.containerPath}:${v.readOnly ? 'ro' : 'rw'}`), ...fileBinds],
    AutoRemove: false,
  };
  if (spec.resources.gpus > 0) {
    hostConfig.DeviceRequests = [{ Driver: 'nvidia', Count: spec.resources.gpus, Capabilities: [['gpu']] }];
  }
  return {
    name: containerName(request.executionId),
    Image: spec.image,
    Cmd: spec.command,
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    ...(spec.workdir === undefined ? {} : { WorkingDir: spec.workdir }),
    User: settings.user,
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    NetworkDisabled: spec.network === 'none',
    Labels: {
      [LABELS.managed]: 'true',
      [LABELS.node]: nodeId,
      [LABELS.job]: request.jobId,
      [LABELS.execution]: request.executionId,
    },
    HostConfig: hostConfig,
  };
}
