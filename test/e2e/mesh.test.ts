/** A mesh of real node processes on loopback. */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { GossipSub } from '@libp2p/gossipsub';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Libp2p } from 'libp2p';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { OFFERS_TOPIC } from '../../src/mesh/mesh.js';
import { signOffer } from '../../src/mesh/offer-book.js';
import { PROTOCOLS, jsonChannel } from '../../src/mesh/wire.js';
import { signedBytes } from '../../src/domain/result-digest.js';
import { GridxClient } from '../../src/sdk/client.js';
import { eventually } from '../helpers/docker.js';
import { tempDir } from '../helpers/node.js';
import { offersPeer } from '../helpers/peer.js';
import { freePort, runCli, spawnNode, type NodeProcess } from '../helpers/process.js';

const image = LOCAL_IMAGE;

function p2pAddress(node: NodeProcess): string {
  const match = /p2p (\/ip4\/\S+)/.exec(node.output());
  if (!match) throw new Error(`no multiaddr in output:\n${node.output()}`);
  return match[1]!;
}

async function stopAll(nodes: NodeProcess[]): Promise<void> {
  for (const n of nodes) if (n.child.exitCode === null) n.child.kill('SIGTERM');
  await Promise.all(nodes.map((n) => n.exited));
}

describe('a five-node mesh of processes', () => {
  const nodes: NodeProcess[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    dirs.push(tempDir());
    nodes.push(await spawnNode(dirs[0]!, ['--slots', '1']));
    const bootstrap = p2pAddress(nodes[0]!);
    const rest = await Promise.all(
      [1, 2, 3, 4].map(async () => {
        const dir = tempDir();
        return { dir, node: await spawnNode(dir, ['--slots', '1', '--bootstrap', bootstrap]) };
      }),
    );
    for (const r of rest) {
      dirs.push(r.dir);
      nodes.push(r.node);
    }
    // A bound on liveness only: how fast a mesh forms is measured by bench/mesh.ts, side by side.
    await Promise.all(nodes.map((n) => eventually(() => new GridxClient(n.url).status(), (s) => s.peers === 4, 30_000)));
  }, 60_000);
  afterAll(async () => {
    await stopAll(nodes);
  });

  it('every node sees the four others, with their signed offers', async () => {
    const ids = await Promise.all(nodes.map(async (n) => (await new GridxClient(n.url).status()).peerId));
    for (const n of nodes) {
      const body = await new GridxClient(n.url).peers();
      expect(body.peers.map((p) => p.peerId).sort()).toEqual(ids.filter((id) => id !== body.peerId).sort());
      for (const p of body.peers) {
        expect(p.offer).toMatchObject({ status: 'idle', slots: { total: 1, free: 1 }, apiUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });
      }
    }
  });

  it('gridx run --mesh finds an idle node through the DHT and offers; gridx peers lists the mesh', async () => {
    const r = await runCli(['run', '--mesh', '--bootstrap', p2pAddress(nodes[2]!), image, '--', 'sh', '-c', 'echo meshed; exit 5']);
    expect(r.stdout).toBe('meshed\n');
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/^gridx: job \S+ on 12D3KooW\w+ \(http:\/\/127\.0\.0\.1:\d+\)\n$/);

    const dead = await runCli(['run', '--mesh', '--bootstrap', `/ip4/127.0.0.1/tcp/${await freePort()}`, image, '--', 'true']);
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(/^gridx: no bootstrap peer answered/);

    const peers = await runCli(['peers', '--node', nodes[0]!.url]);
    expect(peers.code).toBe(0);
    expect(peers.stdout.trim().split('\n')).toHaveLength(5);
    expect(peers.stdout).toMatch(/^PEER\s+STATUS\s+FREE/);
  });

  it('a job sent to a busy node runs on an idle peer', async () => {
    const a = new GridxClient(nodes[0]!.url);
    const blocker = await a.submit({ image, command: ['sleep', '30'], pin: true }, { wait: false });
    await eventually(() => a.get(blocker.id), (j) => j.status === 'running');
    const job = await a.submit({ image, command: 'echo elsewhere' });
    expect(job.status).toBe('completed');
    expect(job.stdout).toBe('elsewhere\n');
    expect(job.executedBy).not.toBe((await a.status()).peerId);
    await a.cancel(blocker.id);
  });

  it('a busy node is never throttled by its peers: thirty jobs at once change every offer many times, and nobody is banned', async () => {
    const a = new GridxClient(nodes[0]!.url);
    const ids = await Promise.all(nodes.map(async (n) => (await new GridxClient(n.url).status()).peerId));
    const jobs = await Promise.all(Array.from({ length: 30 }, (_, i) => a.submit({ image, command: ['echo', `busy ${i}`] })));
    expect(jobs.every((j) => j.status === 'completed')).toBe(true);
    expect(new Set(jobs.map((j) => j.executedBy)).size).toBeGreaterThan(1);
    for (const n of nodes) {
      for (const id of ids) expect(n.output()).not.toMatch(new RegExp(`peer ${id} .*(kept out|faster than)`));
    }
  });

  it('a peer killed mid-job: the job completes on another peer, the attempt recorded', async () => {
    const a = new GridxClient(nodes[0]!.url);
    const ids = await Promise.all(nodes.map(async (n) => (await new GridxClient(n.url).status()).peerId));
    const blocker = await a.submit({ image, command: ['sleep', '60'], pin: true }, { wait: false });
    await eventually(() => a.get(blocker.id), (j) => j.status === 'running');
    const job = await a.submit({ image, command: ['sh', '-c', 'sleep 2; echo survived'] }, { wait: false });
    const running = await eventually(() => a.get(job.id), (j) => j.status === 'running', 10_000);
    const victim = ids.indexOf(running.executedBy!);
    expect(victim).toBeGreaterThan(0);
    nodes[victim]!.child.kill('SIGKILL');
    await nodes[victim]!.exited;

    const done = await eventually(() => a.get(job.id), (j) => j.finishedAt !== undefined, 30_000);
    expect(done).toMatchObject({ status: 'completed', stdout: 'survived\n' });
    expect(done.executedBy).not.toBe(running.executedBy);
    expect(done.attempts).toBe(2);
    expect(done.executions!.map((e) => [e.nodeId === running.executedBy, e.status])).toEqual([
      [true, 'interrupted'],
      [false, 'completed'],
    ]);
    await a.cancel(blocker.id);
  });

  it('a restarted node keeps its peer id', async () => {
    // The last node still alive (the previous test killed one).
    const last = nodes.map((n, i) => (n.child.exitCode === null && n.child.signalCode === null ? i : -1)).filter((i) => i > 0).at(-1)!;
    const before = (await new GridxClient(nodes[last]!.url).status()).peerId;
    nodes[last]!.child.kill('SIGTERM');
    await nodes[last]!.exited;
    nodes[last] = await spawnNode(dirs[last]!, ['--slots', '1', '--bootstrap', p2pAddress(nodes[0]!)]);
    expect((await new GridxClient(nodes[last]!.url).status()).peerId).toBe(before);
    expect(nodes[last]!.output()).toContain(`peer id ${before}`);
  });

  describe('hostile peers', () => {
    let attacker: Libp2p<{ pubsub: GossipSub }>;
    let attackerKey: Awaited<ReturnType<typeof generateKeyPair>>;
    const extras: Libp2p[] = [];
    const newPeer = async (privateKey?: typeof attackerKey) => {
      const peer = await offersPeer(privateKey);
      extras.push(peer);
      return peer;
    };
    /** Publishes `signed` on the offers topic once node 0 is known to subscribe to it. */
    const publishOffer = async (from: Libp2p<{ pubsub: GossipSub }>, signed: unknown) => {
      await from.dial(multiaddr(p2pAddress(nodes[0]!)));
      const target = (await new GridxClient(nodes[0]!.url).status()).peerId;
      await eventually(async () => from.services.pubsub.getSubscribers(OFFERS_TOPIC).map(String), (ids) => ids.includes(target), 10_000);
      await from.services.pubsub.publish(OFFERS_TOPIC, new TextEncoder().encode(JSON.stringify(signed)));
    };
    beforeAll(async () => {
      attackerKey = await generateKeyPair('Ed25519');
      attacker = await newPeer(attackerKey);
    });
    afterAll(async () => {
      await Promise.all(extras.map((p) => p.stop()));
    });

    /** The attacker publishes an offer (its own, validly signed) that ranks it first: idle, many slots, the image cached. */
    async function advertiseIdle(a: GridxClient): Promise<void> {
      const template = (await a.peers()).peers.find((p) => p.peerId !== attacker.peerId.toString())!.offer;
      const now = Date.now();
      const lie = await signOffer(
        {
          ...template,
          peerId: attacker.peerId.toString(),
          apiUrl: 'http://127.0.0.1:9',
          multiaddrs: attacker.getMultiaddrs().map(String),
          status: 'idle',
          slots: { total: 64, free: 64 },
          images: [`${image}`],
          seq: now,
          issuedAt: now,
          expiresAt: now + 60_000,
        },
        attackerKey,
      );
      await publishOffer(attacker, lie);
    }

    it('garbage, truncated and oversized messages on every protocol: stream reset, node fine, the sender banned', async () => {
      const target = multiaddr(p2pAddress(nodes[0]!));
      const vandal = await newPeer();
      // Truncated messages are a peer hanging up, no offence; the rest are: twice over gets it banned.
      for (const protocol of [PROTOCOLS.offer, PROTOCOLS.job, PROTOCOLS.offer, PROTOCOLS.job]) {
        for (const bytes of [
          Uint8Array.from([5, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b]), // "{{{{{" : not JSON
          Uint8Array.from([200, 1, 0x7b]), // promises 200 bytes, sends 1, closes
          Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]), // a 4 GiB length prefix
          new TextEncoder().encode('not even length-prefixed at all'),
        ]) {
          // Once banned, it cannot even open a stream.
          const stream = await vandal.dialProtocol(target, protocol).catch(() => undefined);
          stream?.send(bytes);
          await stream?.close().catch(() => {});
        }
      }
      const status = await new GridxClient(nodes[0]!.url).status();
      expect(status.peers).toBeGreaterThanOrEqual(3);
      await eventually(async () => nodes[0]!.output(), (out) => /\/gridx\/(offer\/2|job\/1)\.0\.0 from \S+: .*stream reset/.test(out));
      await eventually(async () => nodes[0]!.output(), (out) => out.includes(`peer ${vandal.peerId} sent`) && out.includes('kept out for 600s'));
      const opened = await vandal.dialProtocol(target, PROTOCOLS.offer, { signal: AbortSignal.timeout(5000) }).then(() => true, () => false);
      expect(opened).toBe(false);
    });

    it('a peer flooding job requests is cut off, and jobs submitted meanwhile are placed and run', async () => {
      const target = multiaddr(p2pAddress(nodes[0]!));
      const flooder = await newPeer();
      const flood = Promise.allSettled(
        Array.from({ length: 200 }, async () => {
          const stream = await flooder.dialProtocol(target, PROTOCOLS.job);
          await jsonChannel(stream).write({ type: 'run', jobId: 'x', executionId: 'y', spec: { image: 'Bad Image', command: [] } });
          await stream.close();
        }),
      );
      const a = new GridxClient(nodes[0]!.url);
      const jobs = await Promise.all([1, 2, 3].map((i) => a.submit({ image, command: ['echo', `honest ${i}`] })));
      const outcomes = await flood;
      for (const [i, job] of jobs.entries()) expect(job).toMatchObject({ status: 'completed', stdout: `honest ${i + 1}\n` });
      // Twice the rate in a burst, then a few past it, and the peer is gone.
      expect(outcomes.filter((o) => o.status === 'rejected').length).toBeGreaterThan(100);
      await eventually(async () => nodes[0]!.output(), (out) => out.includes(`peer ${flooder.peerId} opens /gridx/job/1.0.0 streams faster than 20/s`));
    });

    it('a peer flooding offers is dropped past ten a second and banned; jobs submitted meanwhile are placed and run', async () => {
      const key = await generateKeyPair('Ed25519');
      const flooder = await newPeer(key);
      const a = new GridxClient(nodes[0]!.url);
      const template = (await a.peers()).peers[0]!.offer;
      const now = Date.now();
      const own = (i: number) =>
        signOffer({ ...template, peerId: flooder.peerId.toString(), apiUrl: 'http://127.0.0.1:9', multiaddrs: [], seq: now + i, issuedAt: now, expiresAt: now + 60_000 }, key);
      await publishOffer(flooder, await own(0));
      const flood = (async () => {
        for (let i = 1; i < 200; i++) await flooder.services.pubsub.publish(OFFERS_TOPIC, new TextEncoder().encode(JSON.stringify(await own(i)))).catch(() => {});
      })();
      const jobs = await Promise.all([1, 2, 3].map((i) => a.submit({ image, command: ['echo', `placed ${i}`] })));
      await flood;
      for (const [i, job] of jobs.entries()) expect(job).toMatchObject({ status: 'completed', stdout: `placed ${i + 1}\n` });
      await eventually(async () => nodes[0]!.output(), (out) => out.includes(`dropped an offer from ${flooder.peerId}: more than 10 offers a second`));
      await eventually(async () => nodes[0]!.output(), (out) => out.includes(`peer ${flooder.peerId} sent invalid offers`));
      // Its only connection, to node 0, is closed.
      await eventually(async () => flooder.getConnections().length, (n) => n === 0);
    });

    it('a peer that reads this node\'s whole book over and over is cut off after four reads per offer ttl', async () => {
      const reader = await newPeer();
      const target = multiaddr(p2pAddress(nodes[0]!));
      const read = async () => {
        const stream = await reader.dialProtocol(target, PROTOCOLS.offer);
        const channel = jsonChannel(stream);
        await channel.write({ type: 'read' });
        const page = await channel.read<{ type: string; offers: unknown[]; more: boolean }>();
        await stream.close().catch(() => {});
        return page;
      };
      for (let i = 0; i < 4; i++) expect(await read()).toMatchObject({ type: 'page', more: false, offers: expect.any(Array) });
      await expect(read()).rejects.toThrow();
      await eventually(async () => nodes[0]!.output(), (out) => out.includes(`from ${reader.peerId}: read this node's book more than 4 times in 30s`));
    });

    it('a forged offer in another peer’s name is dropped, with a log line', async () => {
      const a = new GridxClient(nodes[0]!.url);
      const peers = await a.peers();
      const victim = peers.peers[0]!.offer;
      const forged = await signOffer(
        { ...victim, apiUrl: 'http://127.0.0.66:1', seq: victim.seq + 1_000_000, slots: { total: 64, free: 64 } },
        await generateKeyPair('Ed25519'),
      );
      await publishOffer(attacker, forged);
      await eventually(async () => nodes[0]!.output(), (out) => out.includes(`dropped an offer from ${attacker.peerId}: a forged offer for ${victim.peerId}`));
      const after = await a.peers();
      const same = after.peers.find((p) => p.offer.peerId === victim.peerId)!;
      expect(same.offer.apiUrl).toBe(victim.apiUrl);
      expect(same.offer.slots.total).toBe(1);
      expect((await a.status()).status).toBeDefined();
    });

    it('a peer that claims to be idle and refuses: the job runs elsewhere', async () => {
      // The liar advertises many free slots and the job's image, so it ranks first.
      let asked = 0;
      await attacker.handle(PROTOCOLS.job, async (stream) => {
        asked++;
        const channel = jsonChannel(stream);
        await channel.read();
        await channel.write({ type: 'refused', reason: 'busy: no free slot' });
        await stream.close();
      });
      const a = new GridxClient(nodes[0]!.url);
      await advertiseIdle(a);
      await eventually(() => a.peers(), (l) => l.peers.some((p) => p.peerId === attacker.peerId.toString()));

      const blocker = await a.submit({ image, command: ['sleep', '30'], pin: true }, { wait: false });
      await eventually(() => a.get(blocker.id), (j) => j.status === 'running');
      const job = await a.submit({ image, command: 'echo honest' });
      expect(asked).toBeGreaterThanOrEqual(1);
      expect(job).toMatchObject({ status: 'completed', stdout: 'honest\n' });
      expect(job.executedBy).not.toBe(attacker.peerId.toString());
      expect(job.attempts).toBe(1); // a refusal costs no attempt
      await a.cancel(blocker.id);
      await eventually(async () => nodes[0]!.output(), (out) => out.includes(`peer ${attacker.peerId} did not take it`));
    });

    it('a peer that returns a result its key did not sign: discarded, the job runs again elsewhere', async () => {
      await attacker.unhandle(PROTOCOLS.job);
      await attacker.handle(PROTOCOLS.job, async (stream) => {
        const channel = jsonChannel(stream);
        const run = (await channel.read()) as { jobId: string; executionId: string };
        await channel.write({ type: 'accepted', jobId: run.jobId });
        const at = new Date().toISOString();
        const result = { exitCode: 0, oomKilled: false, timedOut: false, cancelled: false, stdout: 'forged\n', stderr: '', stdoutTruncated: false, stderrTruncated: false, startedAt: at, finishedAt: at, durationMs: 1 };
        // Signed, but by a key other than the one its peer id names.
        const signature = Buffer.from(await (await generateKeyPair('Ed25519')).sign(signedBytes(run.jobId, run.executionId, result))).toString('base64');
        await channel.write({ type: 'result', result, signature });
        await stream.close();
      });
      const a = new GridxClient(nodes[0]!.url);
      await new Promise((r) => setTimeout(r, 5500)); // the refusal above suspended the attacker for 5 s
      await advertiseIdle(a);

      const blocker = await a.submit({ image, command: ['sleep', '30'], pin: true }, { wait: false });
      await eventually(() => a.get(blocker.id), (j) => j.status === 'running');
      const job = await a.submit({ image, command: 'echo honest' });
      await a.cancel(blocker.id);
      expect(job).toMatchObject({ status: 'completed', stdout: 'honest\n' });
      expect(job.executedBy).not.toBe(attacker.peerId.toString());
      const full = await a.get(job.id);
      expect(full.executions!.map((e) => [e.nodeId, e.status])[0]).toEqual([attacker.peerId.toString(), 'interrupted']);
      await eventually(async () => nodes[0]!.output(), (out) => out.includes('sent a result its key did not sign'));
    });

    it('a job request with a bad spec is refused, not run', async () => {
      const stream = await attacker.dialProtocol(multiaddr(p2pAddress(nodes[0]!)), PROTOCOLS.job);
      const channel = jsonChannel(stream);
      await channel.write({ type: 'run', jobId: 'x', executionId: 'y', spec: { image: 'Bad Image', command: [] } });
      expect(await channel.read()).toMatchObject({ type: 'refused', reason: expect.stringContaining('image') });
      await stream.close().catch(() => {});
    });
  });
});

describe('bootstrap faults', () => {
  it('a bootstrap address that does not answer: a clear line, retries, the node still serves', async () => {
    const deadId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    const dead = `/ip4/127.0.0.1/tcp/${await freePort()}/p2p/${deadId}`;
    const node = await spawnNode(tempDir(), ['--bootstrap', dead]);
    try {
      await eventually(async () => node.output(), (out) => (out.match(/did not answer/g) ?? []).length >= 2, 15_000);
      expect(node.output()).toContain(`bootstrap ${dead} did not answer`);
      expect(node.output()).toMatch(/retrying in \d+s/);
      expect((await new GridxClient(node.url).status()).status).toBe('idle');
    } finally {
      await stopAll([node]);
    }
  });
});
