import { describe, expect, it } from 'vitest';
import { normalizeSpec } from '../../src/domain/spec.js';
import { GridxError } from '../../src/errors.js';
import { POLICY } from '../helpers/fixtures.js';

function error(body: unknown, policy = POLICY): GridxError {
  try {
    normalizeSpec(body, policy);
  } catch (err) {
    if (err instanceof GridxError) return err;
    throw err;
  }
  throw new Error('expected normalizeSpec to throw');
}

describe('normalizeSpec', () => {
  it('takes the seed body and fills the node defaults', () => {
    expect(normalizeSpec({ image: 'alpine:latest', command: 'echo hello' }, POLICY)).toEqual({
      image: 'alpine:latest',
      command: ['echo', 'hello'],
      env: {},
      resources: { cpus: 1, memoryBytes: 512 * 1024 * 1024, gpus: 0 },
      timeoutMs: 300_000,
      network: 'none',
      volumes: [],
    });
  });

  it('keeps an argv array as given and reads every optional field', () => {
    const spec = normalizeSpec(
      {
        image: 'python:3.9-slim',
        command: ['python', '-c', 'print(1)'],
        env: ['A=1', 'B=x=y'],
        workdir: '/app',
        resources: { cpus: '0.5', memory: '256m' },
        timeout: 30,
      },
      POLICY,
    );
    expect(spec.command).toEqual(['python', '-c', 'print(1)']);
    expect(spec.env).toEqual({ A: '1', B: 'x=y' });
    expect(spec.workdir).toBe('/app');
    expect(spec.resources).toEqual({ cpus: 0.5, memoryBytes: 256 * 1024 * 1024, gpus: 0 });
    expect(spec.timeoutMs).toBe(30_000);
  });

  it('accepts env as an object', () => {
    expect(normalizeSpec({ image: 'a', command: 'x', env: { N: 3, OK: true } }, POLICY).env).toEqual({ N: '3', OK: 'true' });
  });

  it.each([
    [null, 'body'],
    [[], 'body'],
    [{}, 'image: is required'],
    [{ image: '', command: 'x' }, 'image: must not be empty'],
    [{ image: 42, command: 'x' }, 'image: must be a string'],
    [{ image: 'Not Valid!', command: 'x' }, 'image: "Not Valid!" is not a valid image reference'],
    [{ image: 'alpine' }, 'command: is required'],
    [{ image: 'alpine', command: '' }, 'command: must not be empty'],
    [{ image: 'alpine', command: '   ' }, 'command: must not be empty'],
    [{ image: 'alpine', command: [] }, 'command: must not be empty'],
    [{ image: 'alpine', command: ['echo', 3] }, 'command[1]: must be a string'],
    [{ image: 'alpine', command: { run: 'x' } }, 'command: must be a string or an array'],
    [{ image: 'alpine', command: "echo 'open" }, 'command: cannot be split into words'],
    [{ image: 'alpine', command: 'x', env: 'A=1' }, 'env: must be an object'],
    [{ image: 'alpine', command: 'x', env: ['NOEQUALS'] }, 'env[0]: must be a string "NAME=value"'],
    [{ image: 'alpine', command: 'x', env: { '1BAD': 'v' } }, 'env.1BAD: "1BAD" is not a valid variable name'],
    [{ image: 'alpine', command: 'x', workdir: 'relative' }, 'workdir: must be an absolute path'],
    [{ image: 'alpine', command: 'x', resources: { cpus: -1 } }, 'resources.cpus: must be a number of cores'],
    [{ image: 'alpine', command: 'x', resources: { cpus: 'lots' } }, 'resources.cpus'],
    [{ image: 'alpine', command: 'x', resources: { memory: '-5m' } }, 'resources.memory: must be a size'],
    [{ image: 'alpine', command: 'x', resources: { memory: '1k' } }, 'resources.memory: must be a size of at least 6m'],
    [{ image: 'alpine', command: 'x', resources: { gpus: 0.5 } }, 'resources.gpus: must be a whole number'],
    [{ image: 'alpine', command: 'x', resources: { disk: '1g' } }, 'resources.disk: is not a known resource'],
    [{ image: 'alpine', command: 'x', resources: 'big' }, 'resources: must be an object'],
    [{ image: 'alpine', command: 'x', timeout: 'forever' }, 'timeout: must be a duration'],
    [{ image: 'alpine', command: 'x', timeout: -1 }, 'timeout: must be a duration'],
    [{ image: 'alpine', command: 'x', volumes: '/etc:/etc' }, 'volumes: must be an array'],
  ])('refuses %j with a message naming the field', (body, message) => {
    const err = error(body);
    expect(err.code).toBe('INVALID_INPUT');
    expect(err.httpStatus).toBe(400);
    expect(err.message).toContain(message);
  });

  it.each([
    [{ resources: { memory: '2g' } }, 'resources.memory: 2g is more than this node allows per job (512m)'],
    [{ resources: { cpus: 4 } }, 'resources.cpus: 4 is more than this node allows per job (1)'],
    [{ resources: { gpus: 1 } }, 'resources.gpus: 1 is more than this node offers (0)'],
    [{ timeout: '1h' }, 'timeout: 1h is more than this node allows per job (5m)'],
    [{ network: 'host' }, 'network: "host" is not allowed on this node; allowed: none'],
    [{ volumes: ['/etc:/host-etc'] }, 'volumes[0]: this node allows no volumes'],
  ])('refuses more than the node allows: %j', (extra, message) => {
    const err = error({ image: 'alpine', command: 'x', ...extra });
    expect(err.code).toBe('LIMIT_EXCEEDED');
    expect(err.httpStatus).toBe(400);
    expect(err.message).toContain(message);
  });

  it('mounts only allow-listed paths, read-only unless the node allows writes', () => {
    const policy = { ...POLICY, allowedVolumes: ['/srv/data'] };
    expect(normalizeSpec({ image: 'a', command: 'x', volumes: ['/srv/data/in:/in'] }, policy).volumes).toEqual([
      { hostPath: '/srv/data/in', containerPath: '/in', readOnly: true },
    ]);
    expect(error({ image: 'a', command: 'x', volumes: ['/srv/data/../../etc:/in'] }, policy).message).toContain(
      'must not contain ".."',
    );
    expect(error({ image: 'a', command: 'x', volumes: ['/etc:/in'] }, policy).message).toContain(
      '/etc is not under a path this node allows',
    );
    expect(error({ image: 'a', command: 'x', volumes: ['/srv/database:/in'] }, policy).code).toBe('LIMIT_EXCEEDED');
    expect(error({ image: 'a', command: 'x', volumes: ['/srv/data:/in:rw'] }, policy).message).toContain('read-only');
  });

  it('applies the image allow and deny lists', () => {
    expect(error({ image: 'evil/miner', command: 'x' }, { ...POLICY, denyImages: ['evil/'] }).code).toBe('LIMIT_EXCEEDED');
    expect(error({ image: 'other', command: 'x' }, { ...POLICY, allowImages: ['gridx/'] }).message).toContain(
      'allow list (runner.docker.images.allow: gridx/)',
    );
  });
});
