import { describe, expect, it } from 'vitest';
import { containerOptions } from '../../src/executor/docker/sandbox.js';
import { SPEC } from '../helpers/fixtures.js';

const spec = { ...SPEC, env: { A: '1' }, resources: { cpus: 0.5, memoryBytes: 64 * 1024 * 1024, gpus: 0 } };

describe('containerOptions', () => {
  const options = containerOptions(
    { executionId: 'e1', jobId: 'j1', spec },
    { user: '65534:65534', pidsLimit: 256, tmpfsBytes: 64 * 1024 * 1024 },
    'node-1',
  );
  const host = options.HostConfig!;

  it('applies every control of the sandbox table', () => {
    expect(options.User).toBe('65534:65534');
    expect(options.NetworkDisabled).toBe(true);
    expect(host.NetworkMode).toBe('none');
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.Tmpfs).toEqual({ '/tmp': `rw,nosuid,nodev,size=${64 * 1024 * 1024},mode=1777` });
    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.CapAdd ?? []).toEqual([]);
    expect(host.SecurityOpt).toEqual(['no-new-privileges:true']);
    expect(host.Privileged).toBe(false);
    expect(host.Memory).toBe(64 * 1024 * 1024);
    expect(host.MemorySwap).toBe(64 * 1024 * 1024);
    expect(host.NanoCpus).toBe(500_000_000);
    expect(host.PidsLimit).toBe(256);
    expect(host.LogConfig?.Type).toBe('none');
    expect(host.Binds).toEqual([]);
  });

  it('never turns seccomp off', () => {
    expect(JSON.stringify(options)).not.toMatch(/unconfined/);
  });

  it('labels the container with node, job and execution', () => {
    expect(options.name).toBe('gridx-e1');
    expect(options.Labels).toMatchObject({
      'io.gridx.managed': 'true',
      'io.gridx.node': 'node-1',
      'io.gridx.job': 'j1',
      'io.gridx.execution': 'e1',
    });
  });

  it('passes argv and env without a shell', () => {
    expect(options.Cmd).toEqual(['echo', 'hi']);
    expect(options.Entrypoint).toBeUndefined();
    expect(options.Env).toEqual(['A=1']);
  });
});
