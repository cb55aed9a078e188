/**
 * Keeps hostile peers from wearing a node down (issue 15): a cap on the connections one IP
 * address holds open, a rate limit per peer on the streams it opens on each /gridx/*
 * protocol (a token bucket), and a ban for a while for a peer that keeps offending (floods
 * past its rate, or sends what the protocol cannot read): its connections are closed and
 * the connection gater refuses it, inbound and outbound, until the ban ends. An IPv6 address
 * counts as its /64. Loopback addresses are held to the rates but not to the per-IP cap: a
 * development mesh on one machine shares 127.0.0.1.
 */

import type { ConnectionGater, Libp2p, MultiaddrConnection, PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { isLoopback } from '../config/exposure.js';
import { addressGroup } from '../domain/addresses.js';
import type { Logger } from '../logger.js';

export interface PeerGuardOptions {
  /** Connections one IP address may hold open at once (loopback exempt unless `capLoopback`). */
  connectionsPerIp: number;
  /** Streams a peer may open per second on each /gridx/* protocol; twice as many in a burst. */
  streamsPerSecond: number;
  /** Offences (a stream past the rate, an unreadable message) that get a peer banned. */
  strikes: number;
  /** How long a banned peer is kept out. */
  banMs: number;
  /** Hold loopback addresses to the per-IP cap too (tests). */
  capLoopback?: boolean;
  /** Whether relayed connections may come through `relay` (one this node holds a slot on); none when absent. */
  relayAllowed?: (relay: string) => boolean;
  log: Logger;
  now?: () => number;
}

/** An offence is forgotten after this long, so rare mistakes never add up to a ban. */
const STRIKE_MEMORY_MS = 60_000;
/** An inbound connection admitted by the gater counts against its IP until it opens, or for this long. */
const PENDING_MS = 10_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class PeerGuard {
  private node?: Libp2p;
  private readonly buckets = new Map<string, Bucket>();
  private readonly strikes = new Map<string, number[]>();
  private swept = 0;
  private readonly banned = new Map<string, number>();
  /** Per IP: when each admitted inbound connection that has not opened yet was admitted. */
  private readonly pending = new Map<string, number[]>();
  private readonly now: () => number;

  constructor(private readonly options: PeerGuardOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The libp2p connection gater that enforces the per-IP cap and the bans. */
  gater(): ConnectionGater {
    return {
      denyInboundConnection: (maConn: MultiaddrConnection) => this.overIpCap(maConn.remoteAddr),
      denyInboundEncryptedConnection: (peer: PeerId) => this.isBanned(peer.toString()),
      denyDialPeer: (peer: PeerId) => this.isBanned(peer.toString()),
      // A relayed connection names its peer and its relay as the relay likes, and any connected
      // peer can send one: only relays this node chose carry them.
      denyInboundRelayedConnection: (relay: PeerId, peer: PeerId) => this.isBanned(peer.toString()) || !(this.options.relayAllowed?.(relay.toString()) ?? false),
    };
  }

  /** Watches `node`'s connections: the per-IP count, and a banned peer that was already connected. */
  attach(node: Libp2p): void {
    this.node = node;
    node.addEventListener('connection:open', (event) => {
      const ip = this.addressOf(event.detail.remoteAddr);
      const waiting = ip === undefined ? undefined : this.pending.get(ip);
      if (!waiting || event.detail.direction !== 'inbound') return;
      waiting.shift();
      if (waiting.length === 0) this.pending.delete(ip!);
    });
    // What is kept per peer goes with its last connection (offences and bans stay).
    node.addEventListener('peer:disconnect', (event) => {
      const prefix = `${event.detail.toString()} `;
      for (const key of this.buckets.keys()) if (key.startsWith(prefix)) this.buckets.delete(key);
    });
  }

  /**
   * Whether `peer` may open one more stream on `protocol` now. A stream past the rate is an
   * offence: the caller resets it.
   */
  admit(peer: string, protocol: string): boolean {
    if (this.isBanned(peer)) return false;
    const key = `${peer} ${protocol}`;
    const now = this.now();
    const rate = this.options.streamsPerSecond;
    const bucket = this.buckets.get(key) ?? { tokens: 2 * rate, at: now };
    bucket.tokens = Math.min(2 * rate, bucket.tokens + ((now - bucket.at) / 1000) * rate);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return true;
    }
    this.offended(peer, `opens ${protocol} streams faster than ${rate}/s`);
    return false;
  }

  /** Counts an offence of `peer`; at the limit it is banned and its connections are closed. */
  offended(peer: string, why: string): void {
    if (this.isBanned(peer)) return;
    const now = this.now();
    this.forget(now);
    const recent = (this.strikes.get(peer) ?? []).filter((at) => now - at < STRIKE_MEMORY_MS);
    recent.push(now);
    this.strikes.set(peer, recent);
    if (recent.length < this.options.strikes) return;
    this.strikes.delete(peer);
    this.banned.set(peer, now + this.options.banMs);
    this.options.log.warn(`peer ${peer} ${why}, ${recent.length} offences in a minute: disconnected and kept out for ${Math.round(this.options.banMs / 1000)}s`);
    for (const connection of this.node?.getConnections() ?? []) {
      if (connection.remotePeer.toString() === peer) void connection.close().catch(() => connection.abort(new Error('banned')));
    }
  }

  /**
   * Drops the strikes of peers whose last offence is past memory, and bans that have ended,
   * at most once a minute: a peer that offends (or gets banned) under each of many keys
   * would otherwise leave an entry each.
   */
  private forget(now: number): void {
    if (now - this.swept < STRIKE_MEMORY_MS) return;
    this.swept = now;
    for (const [peer, times] of this.strikes) if (now - times[times.length - 1]! >= STRIKE_MEMORY_MS) this.strikes.delete(peer);
    for (const [peer, until] of this.banned) if (now >= until) this.banned.delete(peer);
  }

  /** How many peers the guard remembers offences or bans of (tests). */
  get remembered(): number {
    return this.strikes.size + this.banned.size;
  }

  isBanned(peer: string): boolean {
    const until = this.banned.get(peer);
    if (until === undefined) return false;
    if (this.now() < until) return true;
    this.banned.delete(peer);
    return false;
  }

  /**
   * What a connection from `addr` counts against in limits per address (addressGroup: IPv6
   * by its /64); undefined for a relayed connection (the IP is the relay's) and, unless
   * `capLoopback`, for loopback.
   */
  addressOf(addr: Multiaddr): string | undefined {
    const ip = ipOf(addr);
    if (ip === undefined || (isLoopback(ip) && !this.options.capLoopback)) return undefined;
    return addressGroup(ip);
  }

  private overIpCap(addr: Multiaddr): boolean {
    const ip = this.addressOf(addr);
    if (ip === undefined) return false;
    const now = this.now();
    const waiting = (this.pending.get(ip) ?? []).filter((at) => now - at < PENDING_MS);
    const open = this.node?.getConnections().filter((c) => this.addressOf(c.remoteAddr) === ip).length ?? 0;
    if (open + waiting.length >= this.options.connectionsPerIp) {
      this.pending.set(ip, waiting);
      this.options.log.debug(`refused a connection from ${ip}: it holds ${open + waiting.length} (mesh.connections_per_ip)`);
      return true;
    }
    waiting.push(now);
    this.pending.set(ip, waiting);
    return false;
  }
}

/**
 * The IP address of a multiaddr's first ip4/ip6 component; none for a relayed address
 * (that IP is the relay's, which caps its own connections: peers behind one relay are not
 * one address).
 */
function ipOf(addr: Multiaddr): string | undefined {
  const components = addr.getComponents();
  if (components.some((c) => c.name === 'p2p-circuit')) return undefined;
  return components.find((c) => c.name === 'ip4' || c.name === 'ip6')?.value;
}
