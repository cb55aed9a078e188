/** Several nodes in one process, a real libp2p mesh on loopback, real Docker. */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { multiaddr } from '@multiformats/multiaddr';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { eventually } from '../helpers/docker.js';
import { fundedAccount, startMeshNode, tempDir, type TestNode } from '../helpers/node.js';
import { offersPeer } from '../helpers/peer.js';

const image = LOCAL_IMAGE;
const nodes: TestNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

async function mesh(count: number, slots = 1): Promise<TestNode[]> {
  const first = await startMeshNode({ flags: { slots } });
  nodes.push(first);
  const bootstrap = [first.node.peerMesh!.multiaddrs[0]!];
  for (let i = 1; i < count; i++) nodes.push(await startMeshNode({ bootstrap, flags: { slots } }));
  await Promise.all(
    nodes.map((n) => eventually(() => n.client.status(), (s) => s.peers === count - 1, 10_000)),
  );
  return [...nodes];
}

describe('mesh (in-process nodes, real Docker)', () => {
  it('a job sent to a busy node runs on an idle peer, with the same answer plus executedBy', async () => {
    const [a] = await mesh(3);
    const blocker = await a!.client.submit({ image, command: ['sleep', '5'], pin: true }, { wait: false });
    await eventually(() => a!.client.get(blocker.id), (j) => j.status === 'running');
    // A paid job: the origin's ledger pays the account bound to the peer that ran it.
    const payer = await fundedAccount(a!, '5');
    const job = await payer.client.submit({ image, command: ['sh', '-c', 'echo forwarded; echo e >&2; exit 3'], reward: '1.5' });
    expect(job).toMatchObject({ status: 'failed', exitCode: 3, stdout: 'forwarded\n', stderr: 'e\n', reward: '1.5' });
    expect(job.executedBy).not.toBe(a!.node.id);
    expect(nodes.map((n) => n.node.id)).toContain(job.executedBy);
    const remote = nodes.find((n) => n.node.id === job.executedBy)!;
    // The copy belongs to the origin's account (node-<origin>): only the node itself lists it for us.
    const copy = (await remote.node.jobs.list()).jobs[0]!;
    expect(copy).toMatchObject({ pinned: true, origin: a!.node.id, status: 'failed' });
    // A non-zero exit is the job's own doing: the peer did the work and earns the reward.
    await eventually(() => a!.node.ledger!.balanceOf(`node-${job.executedBy}`).then(String), (b) => b === String(15n * 10n ** 17n), 5000);
    expect((await payer.client.account()).balance).toBe('3.5');
    await a!.client.cancel(blocker.id);
  });

  it('a forwarded job gets its inputs from the origin and its outputs come back, checked, over libp2p', async () => {
    const [a, b] = await mesh(2);
    const blocker = await a!.client.submit({ image, command: ['sleep', '10'], pin: true }, { wait: false });
    await eventually(() => a!.client.get(blocker.id), (j) => j.status === 'running');
    const input = await a!.client.putBlob(Buffer.from('from the origin\n'));
    // Both ways past what libp2p buffers for a slow reader (4 MiB): the transfer's own flow control holds.
    const large = await a!.client.putBlob(randomBytes(9 * 1024 * 1024));
    const job = await a!.client.submit({
      image,
      command: ['sh', '-c', 'tr a-z A-Z < /inputs/in > /outputs/upper; cat /inputs/large /inputs/large > /outputs/big; echo done'],
      inputs: [
        { path: '/inputs/in', digest: input.digest },
        { path: '/inputs/large', digest: large.digest },
        { path: '/inputs/inline', content: Buffer.from('inline').toString('base64') },
      ],
    });
    expect(job, JSON.stringify(job)).toMatchObject({ status: "completed", stdout: "done\n", executedBy: b!.node.id, outputs: { files: 2 } });
    // Every output route works on the node the user talked to: the files live there now.
    const manifest = await a!.client.outputs(job.id);
    expect(manifest.files.map((f) => f.path)).toEqual(['big', 'upper']);
    expect(await (await fetch(`${a!.url}/jobs/${job.id}/outputs/upper`)).text()).toBe('FROM THE ORIGIN\n');
    const dir = tempDir('gridx-mesh-out-');
    const got = await a!.client.downloadOutputs(job.id, dir);
    expect(got.files.find((f) => f.path === 'big')?.size).toBe(18 * 1024 * 1024);
    await a!.client.cancel(blocker.id);
  });

  it('a pinned job waits for its own node even when peers are idle', async () => {
    const [a] = await mesh(2);
    const first = await a!.client.submit({ image, command: ['sleep', '1'], pin: true }, { wait: false });
    const second = await a!.client.submit({ image, command: 'echo pinned', pin: true });
    expect(second.executedBy).toBe(a!.node.id);
    expect(Date.parse(second.startedAt!)).toBeGreaterThanOrEqual(Date.parse((await a!.client.get(first.id)).finishedAt!));
  });

  it('follows the live output of a forwarded job and cancels it on the peer', async () => {
    const [a] = await mesh(2);
    await a!.client.submit({ image, command: ['sleep', '10'], pin: true }, { wait: false });
    const job = await a!.client.submit(
      { image, command: ['sh', '-c', 'echo first; sleep 30'] },
      { wait: false },
    );
    const seen: string[] = [];
    const following = a!.client.follow(job.id, (e) => {
      if ('stream' in e) seen.push(e.data);
    });
    await eventually(async () => seen.join(''), (s) => s === 'first\n', 10_000);
    const running = await a!.client.get(job.id);
    expect(running.executedBy).not.toBe(a!.node.id);
    await a!.client.cancel(job.id);
    const end = await following;
    expect(end.status).toBe('cancelled');
    const peer = nodes.find((n) => n.node.id === running.executedBy)!;
    const copy = await eventually(async () => (await peer.node.jobs.list()).jobs[0]!, (j) => j.status === 'cancelled');
    expect(copy.status).toBe('cancelled');
  });

  it('a job whose connection to its peer breaks is requeued and runs on that peer again once the peer is back', async () => {
    const [a, b] = await mesh(2);
    const blocker = await a!.client.submit({ image, command: ['sleep', '120'], pin: true }, { wait: false });
    await eventually(() => a!.client.get(blocker.id), (j) => j.status === 'running');
    const job = await a!.client.submit({ image, command: ['sh', '-c', 'echo run; sleep 2'] }, { wait: false });
    await eventually(() => a!.client.get(job.id), (j) => j.status === 'running' && j.executedBy === b!.node.id, 10_000);
    // B is the only place the job can go (A's slot is taken): it must not be written off.
    await a!.node.peerMesh!.libp2p.hangUp(b!.node.peerMesh!.libp2p.peerId);
    const end = await eventually(() => a!.client.get(job.id), (j) => j.status !== 'running' && j.status !== 'pending' && j.status !== 'scheduled', 55_000);
    expect(end).toMatchObject({ status: 'completed', stdout: 'run\n', executedBy: b!.node.id, attempts: 2 });
    await a!.client.cancel(blocker.id);
  }, 70_000);

  it('takes a job bigger than its own limits when a peer allows it; refuses when none does', async () => {
    const small = await startMeshNode({ env: { GRIDX_MEMORY_LIMIT: '64m' } });
    nodes.push(small);
    const big = await startMeshNode({ bootstrap: [small.node.peerMesh!.multiaddrs[0]!] });
    nodes.push(big);
    await eventually(() => small.client.status(), (s) => s.peers === 1);
    const job = await small.client.submit({ image, command: 'echo big', resources: { memory: '256m' } });
    expect(job).toMatchObject({ status: 'completed', stdout: 'big\n', executedBy: big.node.id });
    await expect(small.client.submit({ image, command: 'true', resources: { memory: '4g' } })).rejects.toThrow(
      /no peer in the mesh allows it either/,
    );
    await expect(
      small.client.submit({ image, command: 'true', resources: { memory: '256m' }, pin: true }),
    ).rejects.toThrow(/more than this node allows per job \(64m\)/);
  });

  it('an offer published before the node knew any peer on the topic goes again once one subscribes, not at the next re-signing', async () => {
    // Alone, its offer reaches nobody. A peer that only listens on the topic (no book to
    // read, nothing handed over) then joins: it gets the offer within a second or so; the
    // next re-signing comes 8 s or more after the first (a third of the 30 s ttl).
    const lone = await startMeshNode({ executor: new NoopExecutor() });
    nodes.push(lone);
    const listener = await offersPeer();
    try {
      const heard: string[] = [];
      listener.services.pubsub.addEventListener('message', (event) => {
        heard.push(String((JSON.parse(new TextDecoder().decode(event.detail.data)) as { offer?: { peerId?: string } }).offer?.peerId));
      });
      const joined = Date.now();
      await listener.dial(multiaddr(lone.node.peerMesh!.multiaddrs[0]!));
      await eventually(async () => heard, (ids) => ids.includes(lone.node.id), 5_000);
      expect(Date.now() - joined).toBeLessThan(5_000);
    } finally {
      await listener.stop();
    }
  });
});

