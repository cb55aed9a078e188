/**
 * Hostile user: a libp2p peer using the mesh as a side door around api.auth. A server that
 * requires keys runs nobody's forwarded job unless its operator admits that peer, and an
 * admitted peer's job belongs to the account node-<peer id>: nobody else sees it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { JobSpec } from '../../src/domain/job.js';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { digestOf, manifestOf } from '../../src/domain/data.js';
import type { ExecutionResult } from '../../src/domain/job.js';
import { signedBytes } from '../../src/domain/result-digest.js';
import { type JobMessage, type JobServiceDeps, serveForwardedJob } from '../../src/mesh/job-service.js';
import { RemoteExecutor } from '../../src/mesh/remote-executor.js';
import { BlobStore } from '../../src/storage/blob-store.js';
import { okResult } from '../helpers/fixtures.js';
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

describe('an origin that lies about the files it sends', () => {
  it("is refused when an input's bytes do not hash to its digest, and cannot name a blob the peer holds for someone else without sending it", async () => {
    const origin = await startMeshNode({});
    nodes.push(origin);
    const peer = await startMeshNode({
      bootstrap: [origin.node.peerMesh!.multiaddrs[0]!],
      env: { GRIDX_AUTH: 'required', GRIDX_MESH_ACCEPT: origin.node.id },
    });
    nodes.push(peer);
    await joined(peer, origin);
    // Someone's file on the peer: naming its digest must not be enough to read it.
    const alice = await fundedAccount(peer, '0', { name: 'alice' });
    const theirs = await alice.client.putBlob(Buffer.from('a file of another user'));
    const spec = { ...SPEC, command: ['cat', '/inputs/x'], inputs: [{ path: '/inputs/x', digest: theirs.digest }] };
    const channel = await origin.node.peerMesh!.openJobChannel(peer.node.id, AbortSignal.timeout(10_000));
    await channel.write({ type: 'run', jobId: 'j1', executionId: 'e1', spec } satisfies JobMessage);
    expect(await channel.read<JobMessage>({ signal: AbortSignal.timeout(10_000) })).toEqual({ type: 'need', digests: [theirs.digest] });
    const wrong = Buffer.from('not that file at all!!');
    await channel.write({ type: 'blob', digest: theirs.digest, size: wrong.length } satisfies JobMessage);
    await channel.writeBytes(wrong);
    expect(await channel.read<JobMessage>({ signal: AbortSignal.timeout(10_000) })).toMatchObject({ type: 'refused', reason: expect.stringContaining('digest') });
    expect((await peer.node.jobs.list()).jobs).toEqual([]);
  });
});

describe('a peer that lies about the files it returns', () => {
  type Step = { json?: unknown; bytes?: Buffer };
  const real = Buffer.from('the real output');
  const result = (files: Array<{ path: string; size: number; sha256: string }>): ExecutionResult => ({ ...okResult(''), outputs: manifestOf(files, false) });

  /** The origin's RemoteExecutor against a scripted peer; `held` is on the origin beforehand. */
  async function runAgainst(script: (sign: (r: ExecutionResult) => Promise<string>) => Promise<Step[]>, held?: Buffer) {
    const blobs = new BlobStore({ dataDir: tempDir('gridx-origin-'), maxBlobBytes: 1 << 20, maxBytes: 1 << 30, pinned: async () => new Set(), log: silentLogger });
    await blobs.start();
    if (held) await blobs.put(held);
    const peer = await generateKeyPair('Ed25519');
    const sign = async (r: ExecutionResult) => Buffer.from(await peer.sign(signedBytes('j1', 'e1', r))).toString('base64');
    const queue = await script(sign);
    const next = (): Promise<Step> => {
      const step = queue.shift();
      return step ? Promise.resolve(step) : new Promise<never>(() => {});
    };
    const channel = {
      read: async () => (await next()).json,
      readBytes: async () => new Uint8Array((await next()).bytes!),
      write: async () => {},
      writeBytes: async () => {},
      stream: { close: async () => {}, abort: () => {} },
    };
    const executor = new RemoteExecutor(peerIdFromPrivateKey(peer).toString(), async () => channel as never, 1 << 20, { blobs, maxOutputBytes: 1 << 20 });
    await executor.start({ executionId: 'e1', jobId: 'j1', spec: SPEC });
    return { executor, blobs };
  }

  it('discards a result whose file does not hash to the digest it was sent under', async () => {
    const forged = Buffer.from('something else!');
    const { executor } = await runAgainst(async () => [
      { json: { type: 'accepted', jobId: 'p1' } },
      { json: { type: 'blob', digest: digestOf(real), size: forged.length } },
      { bytes: forged },
    ]);
    await expect(executor.wait('e1')).rejects.toMatchObject({ code: 'REMOTE_ERROR', message: expect.stringContaining('does not check') });
  });

  it("discards a signed result naming a file it never sent (another user's blob on the origin)", async () => {
    const res = result([{ path: 'loot', size: real.length, sha256: digestOf(real) }]);
    const { executor } = await runAgainst(
      async (sign) => [
        { json: { type: 'accepted', jobId: 'p1' } },
        { json: { type: 'result', result: res, signature: await sign(res) } },
      ],
      real,
    );
    await expect(executor.wait('e1')).rejects.toMatchObject({ code: 'REMOTE_ERROR', message: expect.stringContaining('did not send') });
  });

  it('takes a result whose files came and checked', async () => {
    const res = result([{ path: 'out', size: real.length, sha256: digestOf(real) }]);
    const { executor, blobs } = await runAgainst(async (sign) => [
      { json: { type: 'accepted', jobId: 'p1' } },
      { json: { type: 'blob', digest: digestOf(real), size: real.length } },
      { bytes: real },
      { json: { type: 'result', result: res, signature: await sign(res) } },
    ]);
    expect((await executor.wait('e1')).outputs?.root).toBe(res.outputs!.root);
    expect(await blobs.stat(digestOf(real))).toMatchObject({ size: real.length });
  });
});
