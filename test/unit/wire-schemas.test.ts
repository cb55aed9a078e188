import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { normalizeRequest } from '../../src/domain/spec.js';
import { normalizeTask } from '../../src/domain/task.js';
import { jobRequestSchema, parityTaskSchema } from '../../src/wire/schemas.js';
import type { JobRequestBody } from '../../src/wire/gridx.js';
import type { ParityTask } from '../../src/wire/parity.js';
import { POLICY } from '../helpers/fixtures.js';

/**
 * The OpenAPI document describes POST /job and POST /api/tasks with these schemas while the
 * normalizers check the requests: both must take the same requests and refuse the same.
 */
describe('the documented job request schemas', () => {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats.default(ajv);
  const job = ajv.compile(jobRequestSchema);
  const task = ajv.compile(parityTaskSchema);
  const DIGEST = `sha256:${'a'.repeat(64)}`;

  // Typed as the SDK's wire types: a change there that the schemas miss fails here.
  const jobs: JobRequestBody[] = [
    { image: 'alpine:3.20', command: 'echo hi' },
    { image: 'alpine:3.20', command: ['sh', '-c', 'echo hi'], env: { A: '1' }, workdir: '/app', resources: { cpus: 0.5, memory: '256m' }, timeout: '1m', network: 'none', title: 't', pin: true, reward: '2', verification: { replicas: 3 } },
    { image: 'alpine:3.20', command: 'cat /inputs/a', env: ['A=1'], timeout: 30, reward: 1, inputs: [{ path: '/inputs/a', content: 'aGk=' }, { path: '/inputs/b', digest: DIGEST }, { path: '/inputs/c', url: 'https://example.com/c', sha256: 'a'.repeat(64) }] },
  ];
  const tasks: ParityTask[] = [
    { title: 't', config: { command: ['echo', 'hi'] }, environment: { config: { image: 'alpine:3.20' } } },
    { title: 't', description: 'd', type: 'docker', config: { command: ['true'], resources: { memory: '256m', cpu: 1, timeout: '1m' }, inputs: [{ path: '/inputs/a', content: 'aGk=' }] }, environment: { type: 'docker', config: { image: 'alpine:3.20', workdir: '/w', env: ['A=1'] } }, reward: '1', verification: { replicas: 2 } },
  ];

  it('accepts what the normalizers accept', () => {
    for (const body of jobs) {
      expect(() => normalizeRequest(body, POLICY)).not.toThrow();
      expect(job(body), JSON.stringify(job.errors)).toBe(true);
    }
    for (const body of tasks) {
      expect(() => normalizeTask(body, POLICY)).not.toThrow();
      expect(task(body), JSON.stringify(task.errors)).toBe(true);
    }
  });

  it('refuses what the normalizers refuse for its shape', () => {
    const badJobs: unknown[] = [
      { command: 'echo' },
      { image: 'alpine:3.20' },
      { image: 'alpine:3.20', command: 'x', inputs: [{ path: '/inputs/a' }] },
      { image: 'alpine:3.20', command: 'x', inputs: [{ path: '/inputs/a', content: 'aGk=', digest: DIGEST }] },
      { image: 'alpine:3.20', command: 'x', inputs: [{ path: '/inputs/a', content: 'aGk=', mode: 'rw' }] },
    ];
    for (const body of badJobs) {
      expect(() => normalizeRequest(body, POLICY), JSON.stringify(body)).toThrow();
      expect(job(body), JSON.stringify(body)).toBe(false);
    }
    const badTasks: unknown[] = [
      { config: { command: ['x'] }, environment: { config: { image: 'alpine:3.20' } } },
      { title: 't', config: { command: ['x'] }, environment: { config: {} } },
      { title: 't', config: {}, environment: { config: { image: 'alpine:3.20' } } },
    ];
    for (const body of badTasks) {
      expect(() => normalizeTask(body, POLICY), JSON.stringify(body)).toThrow();
      expect(task(body), JSON.stringify(body)).toBe(false);
    }
  });
});
