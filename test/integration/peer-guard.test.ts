/** The peer guard on real libp2p nodes over loopback TCP: the per-IP cap, the rate limit, the ban. */
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { tcp } from '@libp2p/tcp';
import type { Libp2p } from '@libp2p/interface';
import { createLibp2p } from 'libp2p';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { PeerGuard, type PeerGuardOptions } from '../../src/mesh/peer-guard.js';
import { eventually } from '../helpers/docker.js';

const PROTOCOL = '/gridx/test/1.0.0';
const nodes: Libp2p[] = [];

async function node(guard?: PeerGuard): Promise<Libp2p> {
  const n = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(guard ? { connectionGater: guard.gater() } : {}),
    connectionManager: { inboundConnectionThreshold: 1000 },
    services: { identify: identify() },
  });
  nodes.push(n);
  return n;
}

/** A node that serves PROTOCOL (one byte back) to the peers `guard` admits, and counts what it served. */
async function guarded(options: Partial<PeerGuardOptions>) {
  const guard = new PeerGuard({ connectionsPerIp: 100, streamsPerSecond: 5, strikes: 5, banMs: 60_000, log: silentLogger, ...options });
  const server = await node(guard);
  guard.attach(server);
  const served = new Map<string, number>();
  await server.handle(PROTOCOL, (stream, connection) => {
    const peer = connection.remotePeer.toString();
    if (!guard.admit(peer, PROTOCOL)) return stream.abort(new Error('rate limited'));
    served.set(peer, (served.get(peer) ?? 0) + 1);
    stream.send(Uint8Array.of(1));
    void stream.close();
  }, { maxInboundStreams: 1000 });
  return { guard, server, served, addr: server.getMultiaddrs()[0]! };
}

afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

describe('PeerGuard', () => {
  it('holds one IP address to its connection cap, and admits the next once one closes', async () => {
    const { addr } = await guarded({ connectionsPerIp: 2, capLoopback: true });
    const [a, b, c] = await Promise.all([node(), node(), node()]);
    await a.dial(addr);
    await b.dial(addr);
    expect(await c.dial(addr, { signal: AbortSignal.timeout(5000) }).then(() => true, () => false)).toBe(false);
    await a.hangUp(addr);
    await eventually(async () => c.dial(addr).then(() => true, () => false), (ok) => ok, 10_000);
  });

  it('exempts loopback from the per-IP cap unless told otherwise: a mesh on one machine shares 127.0.0.1', async () => {
    const { addr } = await guarded({ connectionsPerIp: 1 });
    const peers = await Promise.all([node(), node(), node()]);
    for (const p of peers) await p.dial(addr);
    expect(peers.every((p) => p.getConnections().length === 1)).toBe(true);
  });

  it('resets streams past the rate; a peer that keeps at it is disconnected and kept out, others are served', async () => {
    const { served, addr, guard } = await guarded({ streamsPerSecond: 5, strikes: 5, banMs: 1500 });
    const [flooder, honest] = await Promise.all([node(), node()]);
    const open = async (who: Libp2p) => {
      try {
        const stream = await who.dialProtocol(addr, PROTOCOL, { signal: AbortSignal.timeout(2000) });
        for await (const _ of stream) break;
        return true;
      } catch {
        return false;
      }
    };
    const results: boolean[] = [];
    for (let i = 0; i < 40; i++) results.push(await open(flooder));
    // A burst of twice the rate passes; five streams past it and the peer is banned.
    expect(served.get(flooder.peerId.toString())).toBeGreaterThanOrEqual(10);
    expect(served.get(flooder.peerId.toString())).toBeLessThan(20);
    expect(guard.isBanned(flooder.peerId.toString())).toBe(true);
    await eventually(async () => flooder.getConnections().length, (n) => n === 0, 5000);
    expect(await open(flooder)).toBe(false);
    // Someone else meanwhile: served as usual.
    for (let i = 0; i < 5; i++) expect(await open(honest)).toBe(true);
    // The ban ends.
    await eventually(() => open(flooder), (ok) => ok, 10_000);
  });

  it('bans a peer after five offences of any kind within a minute, and forgets older ones', async () => {
    let now = 0;
    const guard = new PeerGuard({ connectionsPerIp: 10, streamsPerSecond: 5, strikes: 5, banMs: 10_000, log: silentLogger, now: () => now });
    for (let i = 0; i < 4; i++) guard.offended('p', 'sent garbage');
    now += 61_000;
    guard.offended('p', 'sent garbage');
    expect(guard.isBanned('p')).toBe(false);
    for (let i = 0; i < 4; i++) guard.offended('p', 'sent garbage');
    expect(guard.isBanned('p')).toBe(true);
    expect(guard.admit('p', PROTOCOL)).toBe(false);
    now += 10_001;
    expect(guard.isBanned('p')).toBe(false);
  });

  it('forgets peers that offended once and never again: a peer changing keys leaves no trail', () => {
    let now = 0;
    const guard = new PeerGuard({ connectionsPerIp: 10, streamsPerSecond: 5, strikes: 5, banMs: 10_000, log: silentLogger, now: () => now });
    for (let i = 0; i < 1000; i++) guard.offended(`key-${i}`, 'sent garbage');
    expect(guard.remembered).toBe(1000);
    now += 61_000;
    guard.offended('latest', 'sent garbage');
    expect(guard.remembered).toBe(1);
  });

  it('forgets bans that have ended: a peer banned under each of many keys leaves no trail', () => {
    let now = 0;
    const guard = new PeerGuard({ connectionsPerIp: 10, streamsPerSecond: 5, strikes: 5, banMs: 10_000, log: silentLogger, now: () => now });
    for (let i = 0; i < 1000; i++) for (let s = 0; s < 5; s++) guard.offended(`key-${i}`, 'sent garbage');
    expect(guard.isBanned('key-999')).toBe(true);
    expect(guard.remembered).toBe(1000);
    now += 61_000;
    guard.offended('latest', 'sent garbage');
    expect(guard.remembered).toBe(1);
  });
});
