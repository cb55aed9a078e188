/**
 * Image references aimed at the operator's own network: a job names a "registry" that is
 * a local service, hoping the engine connects to it and the node echoes its answer.
 */
import dns from 'node:dns/promises';
import http from 'node:http';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { internalAddressKind } from '../../src/domain/addresses.js';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { SPEC, errorOf } from '../helpers/fixtures.js';
import { directExecutor, docker } from '../helpers/docker.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

const SECRET = 'SECRET-4f1c9a-local-service-answer';

/** A local HTTP service that answers every request with SECRET, counting connections. */
async function secretService(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server = http.createServer((req, res) => {
    // JSON content type and a registry's paths: what makes the engine quote the body back.
    res.writeHead(req.url === '/v2/' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(`${SECRET} ${req.url}`);
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => connections,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function submitRaw(t: TestNode, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${t.url}/job`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}

describe('image registries (real Docker)', () => {
  let service: Awaited<ReturnType<typeof secretService>>;
  let t: TestNode;
  beforeAll(async () => {
    service = await secretService();
    t = await startTestNode({ flags: { slots: 2, registries: ['docker.io', '*'] } });
  });
  afterAll(async () => {
    await t?.stop();
    await service?.close();
  });

  it('a loopback registry is refused at submit, before anything connects, even under "*"', async () => {
    const answers = [];
    for (const image of [`127.0.0.1:${service.port}/x`, `localhost:${service.port}/x:1`, `127.1:${service.port}/x`, `[::1]:${service.port}/x`]) {
      answers.push({ image, ...(await submitRaw(t, { image, command: 'true' })) });
    }
    expect(service.connections()).toBe(0);
    for (const { image, status, text } of answers) {
      expect({ image, status }).toEqual({ image, status: 400 });
      expect(text).not.toContain(SECRET);
    }
  });

  it('the executor refuses it too, for specs that never passed this node\'s submit', async () => {
    const executor = directExecutor({ registries: ['*'] });
    const err = await errorOf(
      executor.start({ executionId: 'img-loopback', jobId: 'j', spec: { ...SPEC, image: `127.0.0.1:${service.port}/x` } }),
    );
    expect(service.connections()).toBe(0);
    expect(err).toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect(err.message).toContain('is a loopback address');
  });

  it('a registry name that resolves to loopback is refused before the pull', async (ctx) => {
    // The machine's own name resolves to one of its addresses here; a name is not judged by its text alone.
    const host = os.hostname();
    const addresses = await dns.lookup(host, { all: true }).catch(() => []);
    if (!addresses.some((a) => internalAddressKind(a.address) !== undefined)) ctx.skip();
    const executor = directExecutor({ registries: ['*'] });
    const err = await errorOf(
      executor.start({ executionId: 'img-dns', jobId: 'j', spec: { ...SPEC, image: `${host}:${service.port}/x` } }),
    );
    expect(service.connections()).toBe(0);
    expect(err.message).toMatch(/resolves to a (loopback|private|link-local|unspecified) address/);
  });

  it('a name that is a local image id\'s prefix does not run that image', async () => {
    const id = (await docker.getImage(LOCAL_IMAGE).inspect()).Id.slice('sha256:'.length, 'sha256:'.length + 12);
    // Without lists the name is allowed, but it names docker.io/library/<hex>, not the local image.
    const { text } = await submitRaw(t, { image: id, command: ['echo', 'ran'] });
    expect(JSON.parse(text)).toMatchObject({ status: 'failed', reason: 'image_not_found', stdout: '' });
  });

  it('with the registry allowed by name, a failed pull does not echo what the registry said', async () => {
    const allowed = await startTestNode({ flags: { slots: 1, registries: ['docker.io', `127.0.0.1:${service.port}`] } });
    try {
      const image = `127.0.0.1:${service.port}/x:1`;
      const { status, text } = await submitRaw(allowed, { image, command: 'true' });
      expect(status).toBe(200);
      const job = JSON.parse(text) as { id: string; status: string; reason: string; message: string; image: string };
      // The engine did ask the service, which answered with the secret; none of it comes back.
      expect(service.connections()).toBeGreaterThan(0);
      expect(text).not.toContain(SECRET);
      expect(job).toMatchObject({ status: 'failed', reason: 'image_not_found', image });
      expect(job.message).toContain(`could not be pulled from 127.0.0.1:${service.port}`);
      const view = await fetch(`${allowed.url}/jobs/${job.id}`);
      expect(await view.text()).not.toContain(SECRET);
      const task = await fetch(`${allowed.url}/api/tasks/${job.id}`);
      expect(await task.text()).not.toContain(SECRET);
      const logs = await fetch(`${allowed.url}/api/tasks/${job.id}/logs`);
      expect(await logs.text()).not.toContain(SECRET);
    } finally {
      await allowed.stop();
    }
  });

});
