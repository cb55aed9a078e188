/**
 * Hostile peer: offers name whatever addresses their signer likes, and a node dials peers
 * from its book to keep its topic links (the upkeep). Sybil offers all naming one victim's
 * address must not turn every node of the mesh into a dialler of that victim, once per sybil.
 */
import net from 'node:net';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { afterEach, expect, it } from 'vitest';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { OFFERS_TOPIC } from '../../src/mesh/mesh.js';
import { signOffer } from '../../src/mesh/offer-book.js';
import { eventually } from '../helpers/docker.js';
import { startMeshNode, type TestNode } from '../helpers/node.js';
import { offersPeer } from '../helpers/peer.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((f) => f()));
});

it('sybil offers naming one victim address draw one connection attempt from a node, not one per sybil', async () => {
  // The victim: any TCP service; it counts the connections it is sent.
  let attempts = 0;
  const victim = net.createServer((socket) => {
    attempts++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => victim.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => victim.close(resolve)));
  const victimAddr = `/ip4/127.0.0.1/tcp/${(victim.address() as net.AddressInfo).port}`;

  const target: TestNode = await startMeshNode({ executor: new NoopExecutor() });
  cleanups.push(() => target.stop());
  const startedAt = Date.now();
  const attacker = await offersPeer();
  cleanups.push(async () => attacker.stop());
  await attacker.dial(multiaddr(target.node.peerMesh!.multiaddrs[0]!));
  await eventually(async () => attacker.services.pubsub.getSubscribers(OFFERS_TOPIC).map(String), (ids) => ids.includes(target.node.id), 10_000);

  // Eight fresh keys, each signing an offer whose only address is the victim's.
  const template = target.node.peerMesh!.signedOffer!.offer;
  const sybils: string[] = [];
  for (let i = 0; i < 8; i++) {
    const key = await generateKeyPair('Ed25519');
    const peerId = peerIdFromPrivateKey(key).toString();
    sybils.push(peerId);
    const now = Date.now();
    const offer = await signOffer({ ...template, peerId, apiUrl: 'http://127.0.0.1:9', multiaddrs: [victimAddr], seq: now, issuedAt: now, expiresAt: now + 120_000 }, key);
    await attacker.services.pubsub.publish(OFFERS_TOPIC, new TextEncoder().encode(JSON.stringify(offer)));
  }
  await eventually(async () => sybils.filter((id) => target.node.peerMesh!.book.get(id)).length, (n) => n === sybils.length, 10_000);

  // The node holds one topic peer (the attacker) of the eight it keeps: its upkeep dials every 10 s, two
  // peers a round. Three rounds pass; without the per-host rule the victim got two a round.
  const rounds = 3;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, startedAt + rounds * 10_000 + 1_500 - Date.now())));
  expect(attempts).toBe(1);
  // The node is fine, and still holds the attacker's connection.
  expect((await target.client.status()).status).toBe('idle');
}, 60_000);
