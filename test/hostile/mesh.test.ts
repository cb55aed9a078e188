/**
 * Hostile user: a libp2p peer using the mesh as a side door around api.auth. A server that
 * requires keys runs nobody's forwarded job unless its operator admits that peer, and an
 * admitted peer's job belongs to the account node-<peer id>: nobody else sees it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { JobSpec } from '../../src/domain/job.js';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { type JobMessage, type JobServiceDeps, serveForwardedJob } from '../../src/mesh/job-service.js';
import { silentLogger } from '../../src/logger.js';
import { eventually } from '../helpers/docker.js';
import { fundedAccount, startMeshNode, startTestNode, type TestNode, tempDir } from '../helpers/node.js';

const nodes: TestNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

const SPEC: JobSpec = {
  image: LOCAL_IMAGE,
  command: ['sh', '-c', 'echo $SECRET'],
  env: { SECRET: 'forwarded-secret' },
  resources: { cpus: 1, memoryBytes: 64 * 1024 * 1024, gpus: 0 },
  timeoutMs: 20_000,
  network: 'none',
  volumes: [],
};

/** Sends SPEC straight over /gridx/job/1.0.0, as any peer can; returns the messages until the end. */
async function forward(from: TestNode, to: TestNode): Promise<JobMessage[]> {
  const channel = await from.node.peerMesh!.openJobChannel(to.node.id, AbortSignal.timeout(10_000));
  await channel.write({ type: 'run', jobId: 'j1', executionId: 'e1', spec: SPEC } satisfies JobMessage);
  const got: JobMessage[] = [];
  for (;;) {
    const message = await channel.read<JobMessage>({ signal: AbortSignal.timeout(30_000) }).catch(() => undefined);
    if (!message) return got;
    got.push(message);
    if (message.type === 'refused' || message.type === 'result') return got;
  }
}

async function joined(a: TestNode, b: TestNode): Promise<void> {
  await eventually(() => a.client.status(), (s) => s.connections >= 1 && s.peers >= 1, 10_000);
  await eventually(() => b.client.status(), (s) => s.peers >= 1, 10_000);
}

describe('the mesh is not a side door', () => {
  it('a server that requires keys refuses jobs from peers it has not admitted, and runs nothing', async () => {
    const server = await startMeshNode({ env: { GRIDX_AUTH: 'required' } });
    nodes.push(server);
    const peer = await startMeshNode({ bootstrap: [server.node.peerMesh!.multiaddrs[0]!] });
    nodes.push(peer);
    await joined(peer, server);
    const answer = await forward(peer, server);
    expect(answer).toHaveLength(1);
    expect(answer[0]).toMatchObject({ type: 'refused' });
    expect((answer[0] as { reason: string }).reason).toContain('mesh.accept');
    const status = await server.client.status();
    expect(status.queue).toEqual({ pending: 0, running: 0 });
    expect((await server.node.http.inject({ method: 'GET', url: '/jobs' })).json().jobs).toEqual([]);
  });

  it("an admitted peer's job runs as the account node-<peer id>: strangers see its id and status only", async () => {
    const peer = await startMeshNode({});
    nodes.push(peer);
    const server = await startMeshNode({
      bootstrap: [peer.node.peerMesh!.multiaddrs[0]!],
      env: { GRIDX_AUTH: 'required', GRIDX_MESH_ACCEPT: peer.node.id },
    });
    nodes.push(server);
    await joined(server, peer);
    const answer = await forward(peer, server);
    const accepted = answer.find((m) => m.type === 'accepted') as { jobId: string };
    const result = answer.at(-1) as Extract<JobMessage, { type: 'result' }>;
    expect(result.type).toBe('result');
    expect(result.result.stdout).toBe('forwarded-secret\n');

    for (const url of [`/jobs/${accepted.jobId}`, `/api/tasks/${accepted.jobId}`]) {
      expect((await server.node.http.inject({ method: 'GET', url })).json()).toEqual({ id: accepted.jobId, status: 'completed' });
    }
    expect((await server.node.http.inject({ method: 'GET', url: `/jobs/${accepted.jobId}/logs` })).statusCode).toBe(401);
    expect((await server.node.http.inject({ method: 'GET', url: '/jobs' })).body).not.toContain(accepted.jobId);
    const owner = await server.node.accounts!.ofPeer(peer.node.id);
    expect(owner.id).toBe(`node-${peer.node.id}`);
  });

  it('a keyed server hands its users\' jobs only to peers listed in mesh.forward_to', async () => {
    const peer = await startMeshNode({});
    nodes.push(peer);
    const start = (env: Record<string, string>) =>
      startMeshNode({ bootstrap: [peer.node.peerMesh!.multiaddrs[0]!], flags: { slots: 0 }, env: { GRIDX_AUTH: 'required', ...env } });
    const closed = await start({});
    nodes.push(closed);
    await joined(closed, peer);
    const alice = await fundedAccount(closed, '0', { name: 'alice' });
    const held = await alice.client.submit({ image: LOCAL_IMAGE, command: ['true'], env: { SECRET: 'x' } } as never, { wait: false });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await alice.client.get(held.id)).status).toBe('pending');
    expect((await peer.node.jobs.list()).jobs).toEqual([]);

    const open = await start({ GRIDX_MESH_FORWARD_TO: peer.node.id });
    nodes.push(open);
    await joined(open, peer);
    const bob = await fundedAccount(open, '0', { name: 'bob' });
    const ran = await bob.client.submit({ image: LOCAL_IMAGE, command: ['echo', 'forwarded'] });
    expect(ran).toMatchObject({ status: 'completed', stdout: 'forwarded\n', executedBy: peer.node.id });
  });

  it("an open node's \"any\" is any peer on this machine: a job over a remote connection is refused", async () => {
    const written: JobMessage[] = [];
    const channel = {
      read: async () => ({ type: 'run', jobId: 'j', executionId: 'e', spec: SPEC }),
      write: async (m: unknown) => void written.push(m as JobMessage),
      stream: { close: async () => {} },
    };
    const deps = { accept: 'any', loopbackOnly: true, log: silentLogger } as unknown as JobServiceDeps;
    await serveForwardedJob(channel as never, '12D3KooWRemote', deps, { loopback: false });
    expect(written).toEqual([{ type: 'refused', reason: expect.stringContaining('mesh.accept') }]);
  });

  it('an open node will not take any peer’s jobs on a non-loopback libp2p address', async () => {
    await expect(
      startTestNode({ flags: { meshEnabled: true, p2pPort: 0, p2pHost: '0.0.0.0' }, dataDir: tempDir() }),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
