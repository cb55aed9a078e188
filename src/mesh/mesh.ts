/**
 * The mesh: a libp2p node (TCP, noise, yamux, identify, ping, Kademlia DHT) that keeps
 * this node's signed offer published and a book of its peers' offers.
 *
 * Offers travel three ways: on a connection to a peer whose offer one side lacks, the two
 * swap all the offers they know (/gridx/offer/1.0.0 "hello"), so a node that joins through
 * one bootstrap peer learns the whole mesh in one round trip; a changed offer is pushed to
 * connected peers, which pass on what was new to them; and every node is a DHT provider of
 * OFFERS_KEY, so clients and partitioned nodes find providers without knowing any of them.
 */

import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { autoNAT } from '@libp2p/autonat';
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { dcutr } from '@libp2p/dcutr';
import { identify } from '@libp2p/identify';
import type { Connection, Libp2p, PeerId, Stream, StreamHandler } from '@libp2p/interface';
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht';
import { peerIdFromString } from '@libp2p/peer-id';
import { ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { type Offer, type SignedOffer, canonicalJson } from '../domain/offer.js';
import { type RelayMode, SETTINGS } from '../config/schema.js';
import { GridxError, messageOf } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Identity } from './identity.js';
import { OfferBook, signOffer } from './offer-book.js';
import { PeerGuard, type PeerGuardOptions } from './peer-guard.js';
import { type ConnectionType, type Reachability, type ReachabilityService, reachability } from './reachability.js';
import { type JsonChannel, PROTOCOLS, ProtocolError, StreamEndedError, jsonChannel } from './wire.js';

let key: Promise<CID> | undefined;

/** The DHT key every node provides: "I sell compute". */
export function offersKey(): Promise<CID> {
  key ??= (async () => CID.createV1(0x55, await sha256.digest(new TextEncoder().encode('/gridx/offers/v1'))))();
  return key;
}

export const DHT_PROTOCOL = '/gridx/kad/1.0.0';
const MAX_OFFERS_PER_MESSAGE = 1000;
const EXCHANGE_ATTEMPTS = 3;
const JOB_DIAL_ATTEMPTS = 3;
const EXCHANGE_TIMEOUT_MS = 5_000;
/**
 * Offers gather this long before they are pushed together, one stream per peer: at most
 * ten push streams a second to a peer, well inside the rate a peer allows each protocol
 * (mesh.peer_streams_per_second, 20 by default; peer-guard.ts), however busy this node is.
 */
const PUSH_BATCH_MS = 100;
/**
 * How often a node that holds offers asks the DHT for providers it does not know (pushes
 * keep it current otherwise): a query dials the peers closest to the key, on a small mesh
 * all of them. A node that holds none, or has no peer (just started, or cut off), asks
 * every DISCOVER_MS.
 */
const DISCOVER_MS = 15_000;
/** How often a node that holds offers and has peers asks: pushes keep it current. */
const DISCOVER_SETTLED_MS = 300_000;
/** How long the side that was dialled waits for the dialler to start the swap. */
const INBOUND_SWAP_WAIT_MS = 1_000;
/**
 * A node provides OFFERS_KEY when it joins (a first node: when its first peer comes) and
 * every PROVIDE_MS: a provide dials the 20 peers closest to the key. Provider records last
 * 48 h in the DHT; the record only has to follow the closest peers as the mesh churns.
 */
const PROVIDE_MS = 600_000;
/** A ping unanswered this long aborts the connection (libp2p's connection monitor; its own floor is 5 s). */
const PING_TIMEOUT_MS = 15_000;
/** How long status changes gather before the offer is re-signed. */
const PUBLISH_DEBOUNCE_MS = 5;
/** A node re-signs its offer at most this often: a busy node changes status with every job. */
const MIN_PUBLISH_INTERVAL_MS = 250;

/** What the node tells the mesh about itself, apart from the fields the mesh fills in. */
export type OfferFields = Omit<Offer, 'v' | 'peerId' | 'multiaddrs' | 'seq' | 'issuedAt' | 'expiresAt'>;

export interface MeshOptions {
  identity: Identity;
  host: string;
  port: number;
  bootstrap: readonly string[];
  offerTtlMs: number;
  log: Logger;
  /** This node's current offer, without the mesh's own fields. */
  describe: () => Promise<OfferFields>;
  /** Serves a job another node forwards (/gridx/job/1.0.0); `via.loopback`: over loopback. */
  serveJob: (channel: JsonChannel, from: string, via: { loopback: boolean }) => Promise<void>;
  /** Called when the book changed in a way placement may care about. */
  onOffersChanged?: () => void;
  /** Act as a client only: no listener, no provider record, no own offer (gridx run --mesh). */
  client?: boolean;
  /** Limits on what one IP address and one peer may take of this node (peer-guard.ts); defaults when absent. */
  guard?: Pick<PeerGuardOptions, 'connectionsPerIp' | 'streamsPerSecond' | 'banMs'>;
  /** The relay this node serves for peers behind NAT (reachability.ts); defaults when absent. */
  relay?: RelayOptions;
}

export interface RelayOptions {
  mode: RelayMode;
  /** Peers that may hold a slot at once. */
  reservations: number;
  /** What one relayed connection may carry and how long it may last. */
  dataBytes: number;
  timeMs: number;
}

/** How this node is reached, for /status. */
export interface ReachabilityView {
  state: Reachability;
  /** Whether this node relays for peers behind NAT now. */
  relaying: boolean;
  /** Relays this node holds a slot on. */
  relays: string[];
}

/** Offences that get a peer banned: a few unreadable messages may be an old version's; this many are not. */
const STRIKES = 5;

export class Mesh {
  readonly book: OfferBook;
  private node?: Libp2p;
  private seq = 0;
  private own?: SignedOffer;
  private timers: NodeJS.Timeout[] = [];
  private publishTimer?: NodeJS.Timeout;
  private publishedAt = 0;
  private flushTimer?: NodeJS.Timeout;
  /** Offers waiting to be pushed, by peer id, with the peer each came from. */
  private readonly outbox = new Map<string, { signed: SignedOffer; from?: string }>();
  private stopped = false;
  private discoveredAt = 0;
  /**
   * When this node last swapped books with each peer. Books are swapped on a connection to a
   * peer whose offer this node does not hold (a newcomer, or one back from a partition), at
   * most once per offer ttl; not on every connection: the DHT opens and drops connections
   * all the time, and a full swap costs both sides the whole book.
   */
  private readonly swapped = new Map<string, number>();
  private readonly log: Logger;
  private readonly guard: PeerGuard;
  private reach?: ReachabilityService;

  constructor(private readonly options: MeshOptions) {
    this.book = new OfferBook(options.identity.peerId.toString());
    this.log = options.log;
    // Without settings (a client, which serves nothing), the documented defaults.
    const guard = options.guard ?? {
      connectionsPerIp: SETTINGS.connectionsPerIp.default(),
      streamsPerSecond: SETTINGS.peerStreamsPerSecond.default(),
      banMs: SETTINGS.banMs.default(),
    };
    this.guard = new PeerGuard({ ...guard, strikes: STRIKES, log: options.log });
  }

  get peerId(): string {
    return this.options.identity.peerId.toString();
  }

  /**
   * What peers may dial. A relay answers a reservation with all its addresses, loopback
   * included; a relayed address through the relay's loopback would lead a peer to itself.
   */
  get multiaddrs(): string[] {
    return (this.node?.getMultiaddrs().map(String) ?? []).filter((a) => !/^\/ip(4\/127\.|6\/::1\/).*\/p2p-circuit/.test(a));
  }

  /** This node's offer as last signed and published; undefined before the first. */
  get signedOffer(): SignedOffer | undefined {
    return this.own;
  }

  get connectedPeers(): number {
    return this.node?.getPeers().length ?? 0;
  }

  /** How peers reach this node; undefined for a client. */
  get reachability(): ReachabilityView | undefined {
    const r = this.reach;
    return r && { state: r.state, relaying: r.relaying, relays: r.relayPeers };
  }

  /** How this node is connected to `peer` now: direct, through a relay, or punched through NAT (DCUtR). */
  connectionType(peer: string): ConnectionType | undefined {
    return this.reach?.connectionType(peer);
  }

  get libp2p(): Libp2p {
    if (!this.node) throw new Error('mesh not started');
    return this.node;
  }

  async start(): Promise<void> {
    const { options } = this;
    const relay = options.relay ?? {
      mode: SETTINGS.relay.default(),
      reservations: SETTINGS.relayReservations.default(),
      dataBytes: SETTINGS.relayDataBytes.default(),
      timeMs: SETTINGS.relayTimeMs.default(),
    };
    const serving = !options.client && relay.mode !== 'off';
    const node = await createLibp2p({
      start: false,
      privateKey: options.identity.privateKey,
      addresses: { listen: options.client ? [] : [`/ip4/${options.host}/tcp/${options.port}`] },
      // The relay transport dials peers through relays, and holds this node's own slot when
      // it is not reachable (reachability.ts listens on /p2p-circuit then).
      transports: [tcp(), circuitRelayTransport()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionGater: this.guard.gater(),
      connectionManager: {
        maxConnections: 1000,
        inboundConnectionThreshold: 1000,
        maxIncomingPendingConnections: 1000,
      },
      // A node sells its CPUs to jobs, so its event loop may stall for seconds, and the
      // connection carries running jobs: a dead peer is still found, a little later.
      connectionMonitor: { pingTimeout: { minTimeout: PING_TIMEOUT_MS } },
      services: {
        identify: identify(),
        ping: ping(),
        dht: kadDHT({
          protocol: DHT_PROTOCOL,
          clientMode: options.client ?? false,
          // Loopback and private addresses are normal for a development mesh.
          peerInfoMapper: passthroughMapper,
          initialQuerySelfInterval: 0,
          allowQueryWithZeroPeers: true,
        }),
        ...(options.client
          ? {}
          : {
              autoNAT: autoNAT(),
              dcutr: dcutr(),
              reachability: reachability({ mode: relay.mode, log: options.log, onChange: () => this.requestPublish() }),
            }),
        ...(serving
          ? {
              relay: circuitRelayServer({
                reservations: {
                  maxReservations: relay.reservations,
                  defaultDataLimit: BigInt(relay.dataBytes),
                  defaultDurationLimit: relay.timeMs,
                },
              }),
            }
          : {}),
      },
    });
    const services = node.services as { reachability?: ReachabilityService; relay?: unknown };
    this.reach = services.reachability;
    // The relay server's handler, which CircuitRelayServer has as a public method but its
    // service type does not name: with mesh.relay auto it is handled only while public.
    if (services.relay) this.reach?.relayHandler((services.relay as { onHop: StreamHandler }).onHop);
    await listening(options, async () => node.start());
    this.node = node;
    this.discoveredAt = Date.now();
    this.guard.attach(node);
    if (!options.client) {
      // Both run over relayed connections too: a node behind NAT sells its capacity through one.
      await node.handle(PROTOCOLS.offer, (stream, connection) => this.onOfferStream(stream, connection), {
        maxInboundStreams: 64,
        runOnLimitedConnection: true,
      });
      await node.handle(PROTOCOLS.job, (stream, connection) => this.onJobStream(stream, connection), {
        maxInboundStreams: 256,
        runOnLimitedConnection: true,
      });
    }
    node.addEventListener('peer:identify', (event) => {
      const { peerId, protocols, connection } = event.detail;
      if (!protocols.includes(PROTOCOLS.offer)) return;
      const id = peerId.toString();
      // A client holds no book worth keeping: it swaps with every peer it meets.
      const wanted = () => (options.client || !this.book.get(id)) && Date.now() - (this.swapped.get(id) ?? -Infinity) > options.offerTtlMs;
      // One swap carries both books: the side that dialled starts it, the other only if
      // none came within a second (the dialler may be an older node, or may hold our offer).
      if (connection.direction === 'outbound') {
        if (wanted()) void this.exchange(peerId);
      } else {
        this.later(INBOUND_SWAP_WAIT_MS, () => wanted() && this.exchange(peerId));
      }
    });
    if (!options.client && options.bootstrap.length === 0) {
      // A first node joins nobody: it provides once its first peer has come.
      node.addEventListener('peer:connect', () => this.later(1_000, () => this.provide()), { once: true });
    }
    if (!options.client) {
      await this.publish();
      // Well before expiry, so that peers never see this node's offer lapse.
      this.every(Math.max(options.offerTtlMs / 3, 500), () => this.publish());
      this.every(PROVIDE_MS, () => this.provide());
    }
    this.every(DISCOVER_MS, () => {
      const cutOff = this.book.size === 0 || this.connectedPeers === 0;
      if (cutOff || Date.now() - this.discoveredAt >= DISCOVER_SETTLED_MS) return this.discover();
    });
    this.every(options.offerTtlMs, () => {
      for (const [peer, at] of this.swapped) if (Date.now() - at > options.offerTtlMs) this.swapped.delete(peer);
    });
    this.bootstrapLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.publishTimer);
    clearTimeout(this.flushTimer);
    await this.node?.stop();
  }

  /** Re-publishes soon if the offer changed; many changes in a burst make one offer. */
  requestPublish(): void {
    if (this.publishTimer || this.stopped || this.options.client) return;
    const wait = Math.max(PUBLISH_DEBOUNCE_MS, this.publishedAt + MIN_PUBLISH_INTERVAL_MS - Date.now());
    this.publishTimer = setTimeout(() => {
      this.publishTimer = undefined;
      void this.publish({ onlyIfChanged: true });
    }, wait);
  }

  /** Signs the current offer and pushes it to every connected peer. */
  async publish(options: { onlyIfChanged?: boolean } = {}): Promise<void> {
    if (this.stopped || !this.node) return;
    try {
      const fields = await this.options.describe();
      const { seq: _s, issuedAt: _i, expiresAt: _e, v: _v, peerId: _p, ...last } = this.own?.offer ?? {};
      if (options.onlyIfChanged && canonicalJson(last) === canonicalJson({ ...fields, multiaddrs: this.multiaddrs })) return;
      const now = Date.now();
      this.publishedAt = now;
      this.seq = Math.max(this.seq + 1, now);
      const offer: Offer = { ...fields, v: 1, peerId: this.peerId, multiaddrs: this.multiaddrs, seq: this.seq, issuedAt: now, expiresAt: now + this.options.offerTtlMs };
      this.own = await signOffer(offer, this.options.identity.privateKey);
      this.push([this.own]);
    } catch (err) {
      this.log.warn(`publishing the offer failed: ${messageOf(err)}`);
    }
  }

  /** Opens a /gridx/job stream to `peerId`, dialling the addresses from its offer. */
  async openJobChannel(peerId: string, signal: AbortSignal): Promise<JsonChannel> {
    const peer = peerIdFromString(peerId);
    for (let attempt = 1; ; attempt++) {
      try {
        return jsonChannel(await this.openStream(peer, PROTOCOLS.job, signal));
      } catch (err) {
        // Two nodes behind NAT that dial each other through a relay at once each open a
        // circuit, and libp2p drops the second as a duplicate: the next try uses the first.
        if (signal.aborted || (err as Error).name !== 'ConnectionClosedError' || attempt === JOB_DIAL_ATTEMPTS) throw err;
        this.log.debug(`the connection to ${peerId} closed as the job stream opened (attempt ${attempt}); trying again`);
        await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
      }
    }
  }

  /**
   * A stream to `peer` on a connection there is, a direct one first; else a new one. libp2p's
   * own dial passes over connections with limits (relayed ones) and opens another circuit
   * through the same relay, which it then refuses as a duplicate of the first.
   */
  private async openStream(peer: PeerId, protocol: string, signal: AbortSignal): Promise<Stream> {
    const open = this.libp2p.getConnections(peer).filter((c) => c.status === 'open');
    const connection = open.find((c) => c.limits === undefined) ?? open[0];
    if (connection) return connection.newStream(protocol, { signal, runOnLimitedConnection: true });
    return this.libp2p.dialProtocol(peer, protocol, { signal, runOnLimitedConnection: true });
  }

  /** Providers of OFFERS_KEY through the DHT, and their offers (for clients). */
  async discover(signal: AbortSignal = AbortSignal.timeout(10_000)): Promise<number> {
    if (!this.node || this.stopped) return 0;
    this.discoveredAt = Date.now();
    let found = 0;
    try {
      const key = await offersKey();
      for await (const provider of this.node.contentRouting.findProviders(key, { signal })) {
        if (provider.id.equals(this.options.identity.peerId)) continue;
        found++;
        if (this.book.get(provider.id.toString())) continue;
        if (provider.multiaddrs.length > 0) await this.node.peerStore.merge(provider.id, { multiaddrs: provider.multiaddrs });
        await this.exchange(provider.id);
      }
    } catch (err) {
      if (!signal.aborted) this.log.debug(`discovery: ${messageOf(err)}`);
    }
    return found;
  }

  /** Runs `fn` once after `ms`, unless the mesh stops first. */
  private later(ms: number, fn: () => unknown): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      const i = this.timers.indexOf(timer);
      if (i >= 0) this.timers.splice(i, 1);
      void fn();
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private every(ms: number, fn: () => unknown): void {
    const timer = setInterval(() => void fn(), ms);
    timer.unref();
    this.timers.push(timer);
  }

  private async provide(): Promise<void> {
    if (!this.node || this.stopped || this.node.getPeers().length === 0) return;
    try {
      await this.node.contentRouting.provide(await offersKey(), { signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      this.log.debug(`providing the offers key failed: ${messageOf(err)}`);
    }
  }

  /** Dials every bootstrap address until it answers, backing off to 30 s; says why it failed. */
  private bootstrapLoop(): void {
    for (const address of this.options.bootstrap) {
      let ma: Multiaddr;
      try {
        ma = multiaddr(address);
      } catch (err) {
        this.log.error(`bootstrap address ${address} is not a multiaddr (${messageOf(err)}); ignoring it`);
        continue;
      }
      const peer = ma.getComponents().find((c) => c.name === 'p2p')?.value;
      let delay = 500;
      const attempt = async () => {
        if (this.stopped || !this.node) return;
        const connected = peer
          ? this.node.getConnections(peerIdFromString(peer)).length > 0
          : this.node.getPeers().length > 0;
        if (!connected) {
          try {
            await this.node.dial(ma, { signal: AbortSignal.timeout(5_000) });
            this.log.info(`joined the mesh through ${address}`);
            delay = 500;
            void this.provide();
          } catch (err) {
            this.log.warn(`bootstrap ${address} did not answer (${messageOf(err)}); retrying in ${Math.round(delay / 1000)}s`);
            delay = Math.min(delay * 2, 30_000);
          }
        }
        this.later(connected ? 5_000 : delay, attempt);
      };
      void attempt();
    }
  }

  /** Sends a hello with everything we know and takes everything the peer knows. */
  private async exchange(peer: PeerId, attempt = 1): Promise<void> {
    if (!this.node || this.stopped) return;
    let stream: Stream | undefined;
    this.swapped.set(peer.toString(), Date.now());
    try {
      const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS);
      stream = await this.openStream(peer, PROTOCOLS.offer, signal);
      const channel = jsonChannel(stream);
      await channel.write({ type: 'hello', offers: this.known() }, { signal });
      const reply = await channel.read<{ type?: string; offers?: unknown }>({ signal });
      if (reply?.type !== 'offers') throw new ProtocolError(`expected "offers", got ${JSON.stringify(reply?.type)}`);
      await this.take(reply.offers, peer.toString());
      await stream.close();
    } catch (err) {
      stream?.abort(err as Error);
      if (this.stopped) return;
      this.log.debug(`offer exchange with ${peer} failed (attempt ${attempt}): ${messageOf(err)}`);
      // A busy peer can miss the first swap; else they would meet only at the next republish.
      if (attempt < EXCHANGE_ATTEMPTS) this.later(500 * attempt, () => this.exchange(peer, attempt + 1));
    }
  }

  private known(): SignedOffer[] {
    return this.own ? [this.own, ...this.book.signedOffers()] : this.book.signedOffers();
  }

  /**
   * Queues offers for the connected peers (not back to `from`, nor to the offer's own
   * node). Offers queued within PUSH_BATCH_MS leave together, one stream per peer: a hub
   * that hears many joins at once sends each peer one batch, not one stream per join.
   */
  private push(offers: SignedOffer[], from?: string): void {
    for (const signed of offers) this.outbox.set(signed.offer.peerId, { signed, ...(from ? { from } : {}) });
    if (this.outbox.size > 0 && !this.flushTimer) {
      this.flushTimer = setTimeout(() => void this.flush(), PUSH_BATCH_MS);
    }
  }

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    const batch = [...this.outbox.values()];
    this.outbox.clear();
    if (!this.node || this.stopped || batch.length === 0) return;
    await Promise.allSettled(
      this.node.getPeers().map(async (peer) => {
        const id = peer.toString();
        const offers = batch.filter((b) => b.from !== id && b.signed.offer.peerId !== id).map((b) => b.signed);
        if (offers.length === 0) return;
        // A peer not yet identified is tried anyway: skipping it would leave it without
        // these offers until the next republish. One known not to speak the protocol is skipped.
        const protocols = (await this.node!.peerStore.get(peer).catch(() => undefined))?.protocols ?? [];
        if (protocols.length > 0 && !protocols.includes(PROTOCOLS.offer)) return;
        const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS);
        const stream = await this.openStream(peer, PROTOCOLS.offer, signal);
        try {
          await jsonChannel(stream).write({ type: 'push', offers }, { signal });
          await stream.close({ signal });
        } catch (err) {
          stream.abort(err as Error);
        }
      }),
    );
  }

  /** Admits offers from `from`; new ones are added to the peer store and passed on. */
  private async take(raw: unknown, from: string): Promise<void> {
    if (!Array.isArray(raw)) throw new ProtocolError('offers must be an array');
    if (raw.length > MAX_OFFERS_PER_MESSAGE) throw new ProtocolError(`too many offers (${raw.length})`);
    const fresh: SignedOffer[] = [];
    for (const item of raw) {
      const verdict = await this.book.consider(item);
      if (verdict === 'accepted') {
        const signed = item as SignedOffer;
        fresh.push(signed);
        const addrs = signed.offer.multiaddrs.flatMap((a) => {
          try {
            return [multiaddr(a)];
          } catch {
            return [];
          }
        });
        if (addrs.length > 0) {
          await this.node?.peerStore.merge(peerIdFromString(signed.offer.peerId), { multiaddrs: addrs }).catch(() => {});
        }
      } else if (verdict === 'forged' || verdict === 'malformed') {
        const who = (item as SignedOffer)?.offer?.peerId ?? 'unknown';
        this.log.warn(`dropped a ${verdict} offer for ${who} received from ${from}`);
      }
    }
    if (fresh.length > 0) {
      this.options.onOffersChanged?.();
      // An offer that came from its own node is passed on to every other connection;
      // one that came second-hand is not. An update then costs one message per neighbour
      // of a neighbour rather than a flood, and a mesh joined through a common bootstrap
      // (diameter two) hears everything. Farther peers are met by DHT discovery, whose
      // hello swaps all offers.
      const firstHand = fresh.filter((o) => o.offer.peerId === from);
      this.push(firstHand, from);
    }
  }

  /** Whether `from` may open this stream now; a stream past its rate is reset. */
  private admitted(stream: Stream, from: string, protocol: string): boolean {
    if (this.guard.admit(from, protocol)) return true;
    stream.abort(new ProtocolError(`rate limited (mesh.peer_streams_per_second)`));
    return false;
  }

  /** Logs why a stream from `from` was reset; an unreadable message counts against the peer. */
  private failed(stream: Stream, from: string, protocol: string, err: unknown): void {
    this.log.warn(`${protocol} from ${from}: ${messageOf(err)}; stream reset`);
    stream.abort(err as Error);
    if (err instanceof ProtocolError && !(err instanceof StreamEndedError)) this.guard.offended(from, `sent ${protocol} messages it cannot read`);
  }

  private async onOfferStream(stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString();
    if (!this.admitted(stream, from, PROTOCOLS.offer)) return;
    try {
      const channel = jsonChannel(stream);
      const message = await channel.read<{ type?: string; offers?: unknown }>({
        signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS),
      });
      if (message?.type === 'hello') {
        this.swapped.set(from, Date.now());
        await channel.write({ type: 'offers', offers: this.known() });
        await this.take(message.offers, from);
      } else if (message?.type === 'push') {
        await this.take(message.offers, from);
      } else {
        throw new ProtocolError(`unknown message type ${JSON.stringify(message?.type)}`);
      }
      await stream.close();
    } catch (err) {
      this.failed(stream, from, PROTOCOLS.offer, err);
    }
  }

  private async onJobStream(stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString();
    if (!this.admitted(stream, from, PROTOCOLS.job)) return;
    const loopback = /^\/(ip4\/127\.|ip6\/::1\/)/.test(connection.remoteAddr.toString());
    try {
      await this.options.serveJob(jsonChannel(stream), from, { loopback });
    } catch (err) {
      this.failed(stream, from, PROTOCOLS.job, err);
    }
  }
}

/**
 * Starts libp2p, saying in Grid-X's words when its port is taken: libp2p's own error names
 * settings Grid-X does not expose, and carries a stack trace.
 */
async function listening<T>(options: { host: string; port: number }, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    if (!/EADDRINUSE/.test(messageOf(err))) throw err;
    throw new GridxError(
      'CONFIG_INVALID',
      `the p2p port ${options.port} on ${options.host} is in use (another gridx node?); pick another with --p2p-port (mesh.p2p_port), or 0 for any free port`,
      { cause: err },
    );
  }
}
