/** The mesh as it changes: a busy node's offer changes with every job (its peers must not take that for a flood), and links drop. */
import { afterEach, expect, it } from 'vitest';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { eventually } from '../helpers/docker.js';
import { startMeshNode, type TestNode } from '../helpers/node.js';

const nodes: TestNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

it('a node whose offer changes every few milliseconds stays connected to, and current at, its peer', async () => {
  const busy = await startMeshNode({ executor: new NoopExecutor(), flags: { slots: 8 } });
  nodes.push(busy);
  const peer = await startMeshNode({ bootstrap: [busy.node.peerMesh!.multiaddrs[0]!] });
  nodes.push(peer);
  const busyId = busy.node.peerMesh!.peerId;
  await eventually(async () => peer.node.peerMesh!.book.get(busyId), (offer) => offer !== undefined);
  // Short jobs end as fast as they start, and each start and end changes the busy node's
  // offer; here it is asked to publish every 5 ms for two seconds (it publishes at most
  // four a second, and its peer drops a node's offers past ten a second as a flood).
  const jobs = Promise.all(Array.from({ length: 200 }, () => busy.client.submit({ image: 'gridx/busybox:local', command: 'true', pin: true })));
  for (let i = 0; i < 400; i++) {
    void busy.node.peerMesh!.publish();
    await new Promise((r) => setTimeout(r, 5));
  }
  await jobs;
  // Its peer kept the connection (a banned peer is disconnected) and hears its offers.
  const conns = peer.node.peerMesh!.libp2p.getConnections(busy.node.peerMesh!.libp2p.peerId);
  expect(conns.length).toBeGreaterThan(0);
  const before = peer.node.peerMesh!.book.get(busyId)!.seq;
  await busy.client.submit({ image: 'gridx/busybox:local', command: 'true', pin: true });
  await eventually(async () => peer.node.peerMesh!.book.get(busyId)?.seq ?? 0, (seq) => seq > before);
});

it('nodes that joined through one bootstrap node keep connections to each other for the offers topic, and make them again when they drop', async () => {
  const seed = await startMeshNode({ executor: new NoopExecutor() });
  nodes.push(seed);
  const joiners: TestNode[] = [];
  for (let i = 0; i < 3; i++) {
    joiners.push(await startMeshNode({ executor: new NoopExecutor(), bootstrap: [seed.node.peerMesh!.multiaddrs[0]!] }));
  }
  nodes.push(...joiners);
  const linked = () =>
    joiners.every((a) => joiners.every((b) => a === b || a.node.peerMesh!.libp2p.getConnections(b.node.peerMesh!.libp2p.peerId).length > 0));
  await eventually(async () => linked(), (ok) => ok, 20_000);
  // Dropped, the joiners hold only the seed: gossipsub dials nobody, and the DHT asks again
  // in minutes. Each node dials peers from its book while it has fewer than it keeps.
  for (const a of joiners) for (const b of joiners) if (a !== b) await a.node.peerMesh!.libp2p.hangUp(b.node.peerMesh!.libp2p.peerId);
  expect(linked()).toBe(false);
  await eventually(async () => linked(), (ok) => ok, 20_000);
});

it('a node that stops withdraws its offer: its peers drop it within seconds, not at its expiry', async () => {
  const going = await startMeshNode({ executor: new NoopExecutor() });
  const peer = await startMeshNode({ executor: new NoopExecutor(), bootstrap: [going.node.peerMesh!.multiaddrs[0]!] });
  nodes.push(peer);
  const id = going.node.peerMesh!.peerId;
  await eventually(async () => peer.node.peerMesh!.book.get(id), (offer) => offer !== undefined);
  expect(peer.node.peerMesh!.book.get(id)!.expiresAt - Date.now()).toBeGreaterThan(20_000);
  await going.stop();
  await eventually(async () => peer.node.peerMesh!.book.get(id), (offer) => offer === undefined, 5_000);
});
