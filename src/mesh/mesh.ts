/**
 * The mesh: a libp2p node (TCP, noise, yamux, identify, ping, Kademlia DHT, gossipsub,
 * circuit relay) that keeps this node's signed offer published and a book of its peers'.
 *
 * Offers travel three ways. A node publishes its own offer on a gossipsub topic
 * (OFFERS_TOPIC) when it changes and well before it expires; every node checks an offer
 * before it passes it on (validate()), and peers that pass on bad ones lose score and are
 * banned. A node that meets a peer whose offer it lacks (it joined, or a partition healed)
 * reads that peer's book in one request, answered in pages (/gridx/offer/2.0.0), and hands
 * over its own offer with it, which the peer publishes on the topic at once: the newcomer's
 * own topic mesh is still forming. And every node is a DHT provider of OFFERS_KEY, so
 * clients and partitioned nodes find providers without knowing any of them.
 */

import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { autoNAT } from '@libp2p/autonat';
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { dcutr } from '@libp2p/dcutr';
import { type GossipSub, type Message, StrictNoSign, TopicValidatorResult, gossipsub } from '@libp2p/gossipsub';
import { createTopicScoreParams } from '@libp2p/gossipsub/score';
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
import { addressGroup, type InternalKind, internalAddressKind } from '../domain/addresses.js';
import { MAX_OFFER_ADDRS, MAX_OFFER_TTL_MS, type Offer, type SignedOffer, offerTerms } from '../domain/offer.js';
import { type RelayMode, SETTINGS } from '../config/schema.js';
import { GridxError, messageOf } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Identity } from './identity.js';
import { MAX_OFFER_BYTES, OFFER_BOOK_CAPACITY, OfferBook, type OfferVerdict, fitted, signOffer } from './offer-book.js';
import { inOneWrite } from './one-write.js';
import { PeerGuard, type PeerGuardOptions } from './peer-guard.js';
import { RecentEvents } from './recent.js';
import { type ConnectionType, type Reachability, type ReachabilityService, reachability, relayOf } from './reachability.js';
import { type JsonChannel, PROTOCOLS, ProtocolError, StreamEndedError, jsonChannel } from './wire.js';

let key: Promise<CID> | undefined;

/** The DHT key every node provides: "I sell compute". */
export function offersKey(): Promise<CID> {
  key ??= (async () => CID.createV1(0x55, await sha256.digest(new TextEncoder().encode('/gridx/offers/v1'))))();
  return key;
}

export const DHT_PROTOCOL = '/gridx/kad/1.0.0';
/** The gossipsub topic offers travel on. */
export const OFFERS_TOPIC = '/gridx/offers/1';
/** Offers in one page of a book, and its bytes at most (well inside MAX_MESSAGE_BYTES). */
const BOOK_PAGE = 1000;
const BOOK_PAGE_BYTES = 2 * 1024 * 1024;
const BOOK_ATTEMPTS = 3;
/** Pages a book may have: a full book (offer-book.ts) and this node's own offer. */
const MAX_BOOK_PAGES = Math.ceil(((OFFER_BOOK_CAPACITY + 1) * MAX_OFFER_BYTES) / BOOK_PAGE_BYTES);
/** How long one page may take to come. */
const BOOK_TIMEOUT_MS = 5_000;
/**
 * Reads of this node's book one peer may start per offer ttl: one when it meets this node,
 * the follow-up, and retries. A read sends up to the whole book (7 MB at 10,000 offers) for
 * a request of a few hundred bytes; more are refused.
 */
const BOOK_READS_PER_TTL = 4;
/**
 * A node that read a peer's book reads what came to the peer since, this long after: an
 * offer the peer took between the two may not have reached this node by the topic (the
 * two were still exchanging subscriptions), and would wait for its next publication.
 */
const FOLLOW_UP_MS = 1_000;
/**
 * And once more, this share of an offer ttl after that: a node hears the topic from all
 * sides only once its own links are made (the upkeep, 10 s apart), and a node joining with
 * many others at once misses much before that, the re-signings of its fellow joiners among
 * them. Their first offers, signed before they knew the mesh, live 30 s: without this, a
 * joiner lost each such peer for tens of seconds at its first offer's expiry.
 */
const LATE_FOLLOW_UP = 0.5;
/** How long a read waits for the reader's subscription to the topic (subscribed()). */
const SUBSCRIPTION_WAIT_MS = 1_000;
/** Offers of one peer accepted in a second; past it they are dropped (and their publisher, if it sent them itself, offends). */
const OFFERS_PER_PEER_PER_SECOND = 10;
/**
 * gossipsub's mesh degree: the peers a node passes each offer to (D), and how many it
 * keeps before pruning (Dhi); gossipsub's own. A hub that held every joiner in its mesh
 * (Dhi 64) forwarded each offer 64 times; the topic-peer upkeep (TOPIC_PEERS) spreads the
 * joiners' links instead. D 4 / Dhi 8 sent no fewer bytes and spread offers slower.
 */
const GOSSIP_D = 6;
const GOSSIP_DHI = 12;
/**
 * Topic peers a node keeps connections to, dialling peers from its book at random while it
 * has fewer: gossipsub builds its mesh only among connected peers and dials nobody itself.
 * Without this a node that joined through one bootstrap peer hangs off that hub alone, and
 * past the hub's Dhi the hub prunes it and it hears offers only by lazy gossip (a 100-node
 * mesh did not form). Random links make the topic mesh a random graph a few hops across.
 */
const TOPIC_PEERS = 8;
/**
 * How often a node checks it has TOPIC_PEERS, and dials at most this many at once. Not at
 * once on joining: a small mesh forms through its bootstrap peer first (dialling right after
 * the first book read made 20 node processes on 2 cores form 1.5 s later).
 */
const UPKEEP_MS = 10_000;
const UPKEEP_DIALS = 2;
/** Failed upkeep dials at one IP address (IPv6: /64) within an offer ttl after which the upkeep leaves it. */
const UPKEEP_HOST_FAILURES = 2;
/** The same on loopback, where a development mesh lives, each node on its own port. */
const UPKEEP_LOOPBACK_FAILURES = 8;
/** Which of a peer's addresses the upkeep dials first. */
const KIND_ORDER: readonly (InternalKind | 'public')[] = ['public', 'private', 'link-local', 'loopback'];
const JOB_DIAL_ATTEMPTS = 3;
/**
 * How often a node that holds offers asks the DHT for providers it does not know (the
 * topic keeps it current otherwise): a query dials the peers closest to the key, on a small mesh
 * all of them. A node that holds none, or has no peer (just started, or cut off), asks
 * every DISCOVER_MS.
 */
const DISCOVER_MS = 15_000;
/** How often a node that holds offers and has peers asks: the topic keeps it current. */
const DISCOVER_SETTLED_MS = 300_000;
/** How long the side that was dialled waits for the dialler's offer before it reads the dialler's book. */
const INBOUND_READ_WAIT_MS = 1_000;
/**
 * A node provides OFFERS_KEY when it joins (a first node: when its first peer comes) and
 * every PROVIDE_MS: a provide dials the 20 peers closest to the key. Provider records last
 * 48 h in the DHT; the record only has to follow the closest peers as the mesh churns.
 */
const PROVIDE_MS = 600_000;
/**
 * A node sells its CPUs, so its event loop may stall for seconds: a ping unanswered this long
 * aborts the connection (libp2p's connection monitor; its own floor is 5 s), and a connection
 * may take this long to open, either way (libp2p's 5 or 6 s and 10 s: a loaded node's handshakes
 * timed out, were retried, and loaded it more; 100 nodes in one process never formed).
 */
const PING_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 15_000;
/**
 * Re-signed offers the whole mesh publishes per second to keep them from expiring, at most:
 * a node re-signs its unchanged offer every ttl/3, and lengthens its ttl past mesh.offer_ttl
 * as the mesh grows (to MAX_OFFER_TTL_MS), so that what every node receives at rest does not grow
 * with the number of nodes. Changed offers go out at once, whatever this says.
 */
const MESH_REFRESHES_PER_SECOND = 2;
/** How long the last offer of a node that stops lives: long enough to reach the mesh. */
const WITHDRAWN_TTL_MS = 2_000;
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
  /**
   * Whether this node's last offer reached no peer: published before any peer on the topic
   * was known (a node just started, or its first offer changed as it met the mesh). It goes
   * again as soon as one is; else peers would hold the offer before it, or none, until the
   * next re-signing (tens of seconds to minutes), and lose the node if that one expired.
   */
  private unheard = false;
  private stopped = false;
  private discoveredAt = 0;
  /**
   * When this node last read each peer's book. It reads a book on meeting a peer whose offer
   * it does not hold (a newcomer, or one back from a partition), at most once per offer ttl;
   * not on every connection: the DHT opens and drops connections all the time.
   */
  private readonly read = new Map<string, number>();
  /**
   * Since when this node has had no peer (its link went down, or every peer left), until it
   * has read a book again. Back, it reads the book of the peers it meets, as a newcomer does:
   * it missed what the mesh published meanwhile, and the mesh what it published. Otherwise
   * both would learn it only at each offer's next re-signing, up to 20 min on a large mesh.
   */
  private cutOffSince?: number;
  /** Reads of this node's book by each peer in the last offer ttl (at most BOOK_READS_PER_TTL). */
  private readonly readsBy: RecentEvents;
  /**
   * Reads by each address (PeerGuard.addressOf) in the last offer ttl, at most as many as the
   * peers it may connect at once may make (readsPerAddress): a fresh key is free, so the
   * limit per peer alone let one address read the whole book for a few hundred bytes, over
   * and over.
   */
  private readonly readsFrom: RecentEvents;
  private readonly readsPerAddress: number;
  /** Offers of each node accepted from the topic in the last second (at most OFFERS_PER_PEER_PER_SECOND). */
  private readonly accepted = new RecentEvents(1000);
  /** What the upkeep failed to dial in the last offer ttl (peer ids, and DialTarget's endpoints and hosts). */
  private readonly unreachable: RecentEvents;
  private upkeeping = false;
  /** Endpoints where the upkeep reached another peer than it asked for, and which (for an offer ttl). */
  private readonly answeredAs = new Map<string, { peerId: string; at: number }>();
  private readonly log: Logger;
  private readonly guard: PeerGuard;
  private reach?: ReachabilityService;

  constructor(private readonly options: MeshOptions) {
    this.book = new OfferBook(options.identity.peerId.toString());
    this.readsBy = new RecentEvents(options.offerTtlMs);
    this.readsFrom = new RecentEvents(options.offerTtlMs);
    this.unreachable = new RecentEvents(options.offerTtlMs);
    this.log = options.log;
    // Without settings (a client, which serves nothing), the documented defaults.
    const guard = options.guard ?? {
      connectionsPerIp: SETTINGS.connectionsPerIp.default(),
      streamsPerSecond: SETTINGS.peerStreamsPerSecond.default(),
      banMs: SETTINGS.banMs.default(),
    };
    this.guard = new PeerGuard({ ...guard, strikes: STRIKES, log: options.log, relayAllowed: (relay) => this.reach?.reservedOn(relay) ?? false });
    this.readsPerAddress = guard.connectionsPerIp * BOOK_READS_PER_TTL;
  }

  get peerId(): string {
    return this.options.identity.peerId.toString();
  }

  /**
   * What peers may dial. A relay answers a reservation with all its addresses, loopback
   * included; a relayed address through the relay's loopback would lead a peer to itself.
   * None through a relay this node did not choose (ReachabilityService.foreignRelay).
   */
  get multiaddrs(): string[] {
    return advertised((this.node?.getMultiaddrs() ?? []).filter((a) => !this.reach?.foreignRelay(a)));
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
      connectionEncrypters: [inOneWrite(noise())],
      // No yamux keep-alive: the connection monitor pings every connection already.
      streamMuxers: [yamux({ enableKeepAlive: false })],
      connectionGater: this.guard.gater(),
      connectionManager: {
        maxConnections: 1000,
        inboundConnectionThreshold: 1000,
        maxIncomingPendingConnections: 1000,
        dialTimeout: CONNECT_TIMEOUT_MS,
        addressDialTimeout: CONNECT_TIMEOUT_MS,
        inboundUpgradeTimeout: CONNECT_TIMEOUT_MS,
      },
      // The connection carries running jobs: a dead peer is still found, a little later.
      connectionMonitor: { pingTimeout: { minTimeout: PING_TIMEOUT_MS } },
      services: {
        identify: identify(),
        // The monitor pings every 10 s and waits up to 15 s: a second ping while the first
        // waits was refused (ping allows one outbound stream by default), and the monitor
        // aborted the connection for it; on a loaded node, a third of all connections.
        ping: ping({ maxOutboundStreams: 4 }),
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
              pubsub: gossipsub(gossipOptions()),
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
      const pubsub = this.pubsub!;
      pubsub.topicValidators.set(OFFERS_TOPIC, (peer, message) => this.validate(peer.toString(), message));
      pubsub.subscribe(OFFERS_TOPIC);
      pubsub.addEventListener('subscription-change', (event) => {
        if (this.unheard && event.detail.subscriptions.some((s) => s.topic === OFFERS_TOPIC && s.subscribe)) this.requestPublish();
      });
    }
    node.addEventListener('peer:disconnect', () => {
      if (this.stopped || options.client || node.getPeers().length > 0 || this.cutOffSince !== undefined) return;
      this.cutOffSince = Date.now();
      this.log.info('no peer left: cut off from the mesh until one is back');
    });
    node.addEventListener('peer:identify', (event) => {
      const { peerId, protocols, connection } = event.detail;
      if (!protocols.includes(PROTOCOLS.offer)) return;
      const id = peerId.toString();
      // Until one such read succeeds, every peer that comes is read (a hostile first one may answer nothing).
      if (this.cutOffSince !== undefined) {
        this.log.info(`back in touch with the mesh after ${Math.round((Date.now() - this.cutOffSince) / 1000)} s without a peer: reading the book of ${id}`);
        void this.readBook(peerId);
        return;
      }
      // A client holds no book worth keeping: it reads the book of every peer it meets.
      const wanted = () => (options.client || !this.book.get(id)) && Date.now() - (this.read.get(id) ?? -Infinity) > options.offerTtlMs;
      // The side that dialled reads; the other only if the dialler's offer did not come
      // with its read within a second (it may hold this node's offer already).
      if (connection.direction === 'outbound') {
        if (wanted()) void this.readBook(peerId);
      } else {
        this.later(INBOUND_READ_WAIT_MS, () => wanted() && this.readBook(peerId));
      }
    });
    if (!options.client && options.bootstrap.length === 0) {
      // A first node joins nobody: it provides once its first peer has come.
      node.addEventListener('peer:connect', () => this.later(1_000, () => this.provide()), { once: true });
    }
    if (!options.client) {
      await this.publish();
      this.refreshLater();
      this.every(PROVIDE_MS, () => this.provide());
      this.every(UPKEEP_MS, () => this.keepTopicPeers());
    }
    this.every(DISCOVER_MS, () => {
      const cutOff = this.book.size === 0 || this.connectedPeers === 0;
      if (cutOff || Date.now() - this.discoveredAt >= DISCOVER_SETTLED_MS) return this.discover();
    });
    this.every(options.offerTtlMs, () => {
      const now = Date.now();
      for (const [peer, at] of this.read) if (now - at > options.offerTtlMs) this.read.delete(peer);
      this.readsBy.sweep(now);
      this.readsFrom.sweep(now);
      this.accepted.sweep(now);
      this.unreachable.sweep(now);
    });
    this.bootstrapLoop();
  }

  async stop(): Promise<void> {
    if (!this.stopped) await this.withdraw();
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.publishTimer);
    await this.node?.stop();
  }

  /**
   * Tells the mesh this node is going: a last offer with no free slot that expires in
   * WITHDRAWN_TTL_MS. Peers take it (a newer seq) and drop it when it expires, instead of
   * holding the last one to its expiry (up to an hour on a large mesh). A node that dies
   * without stopping withdraws nothing: its offer expires.
   */
  private async withdraw(): Promise<void> {
    const last = this.own?.offer;
    if (!last || !this.pubsub) return;
    try {
      await this.pubsub.publish(OFFERS_TOPIC, offerMessage(await this.sign({ ...last, status: 'busy', slots: { ...last.slots, free: 0 } }, WITHDRAWN_TTL_MS)));
    } catch (err) {
      this.log.debug(`withdrawing the offer: ${messageOf(err)}`);
    }
  }

  private get pubsub(): GossipSub | undefined {
    return (this.node?.services as { pubsub?: GossipSub } | undefined)?.pubsub;
  }

  /**
   * How long this node's offers live: mesh.offer_ttl, or longer on a large mesh (see
   * MESH_REFRESHES_PER_SECOND); the book's size stands for the mesh's.
   */
  private ttlMs(): number {
    const spread = ((this.book.size + 1) / MESH_REFRESHES_PER_SECOND) * 1000 * 3;
    return Math.min(Math.max(this.options.offerTtlMs, spread), MAX_OFFER_TTL_MS);
  }

  /**
   * Re-signs the offer a third of the way through its life, well before it expires (peers
   * never see it lapse), at a random point of the last fifth of that third, so that nodes
   * started together do not all publish at once. A change that re-signed it since moves the
   * time on: it is the new offer's third that counts.
   */
  private refreshLater(): void {
    const own = this.own?.offer;
    const issuedAt = own?.issuedAt ?? Date.now();
    const life = own ? own.expiresAt - own.issuedAt : this.ttlMs();
    const due = issuedAt + (life / 3) * (0.8 + 0.2 * Math.random());
    this.later(Math.max(due - Date.now(), MIN_PUBLISH_INTERVAL_MS), async () => {
      if (this.own?.offer === own) await this.publish();
      this.refreshLater();
    });
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

  /**
   * Signs the current offer and publishes it on the offers topic; within
   * MIN_PUBLISH_INTERVAL_MS of the last, later (peers take more than a few a second for a flood).
   */
  async publish(options: { onlyIfChanged?: boolean } = {}): Promise<void> {
    if (this.stopped || !this.node) return;
    if (Date.now() - this.publishedAt < MIN_PUBLISH_INTERVAL_MS) return this.requestPublish();
    try {
      const fields = await this.options.describe();
      const multiaddrs = this.multiaddrs;
      // As it would be signed: an offer that sheds images to fit differs from `fields` in them.
      const unchanged = (own: Offer) => {
        const candidate = fitted({ ...own, ...fields, multiaddrs });
        return candidate !== undefined && offerTerms(own) === offerTerms(candidate);
      };
      if (options.onlyIfChanged && !this.unheard && this.own && unchanged(this.own.offer)) return;
      this.publishedAt = Date.now();
      this.own = await this.sign({ ...fields, multiaddrs }, this.ttlMs());
      const { recipients } = await this.pubsub!.publish(OFFERS_TOPIC, offerMessage(this.own));
      this.unheard = recipients.length === 0;
    } catch (err) {
      this.log.warn(`publishing the offer failed: ${messageOf(err)}`);
    }
  }

  /**
   * This node's offer of `fields`, with the next seq, living `ttlMs` from now, signed; with
   * fewer cached images if all of them would make it too big for peers to take.
   */
  private async sign(fields: OfferFields & Pick<Offer, 'multiaddrs'>, ttlMs: number): Promise<SignedOffer> {
    const now = Date.now();
    this.seq = Math.max(this.seq + 1, now);
    const offer: Offer = { ...fields, v: 1, peerId: this.peerId, seq: this.seq, issuedAt: now, expiresAt: now + ttlMs };
    const fit = fitted(offer);
    if (fit === undefined) throw new Error(`this node's offer is over ${MAX_OFFER_BYTES} bytes even without cached images; peers would drop it`);
    if (fit !== offer) this.log.debug(`the offer names ${fit.images.length} of ${offer.images.length} cached images: all of them would make it over ${MAX_OFFER_BYTES} bytes`);
    return signOffer(fit, this.options.identity.privateKey);
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
        await this.readBook(provider.id);
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
            await this.node.dial(ma, { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) });
            this.log.info(`joined the mesh through ${address}`);
            delay = 500;
            void this.provide();
          } catch (err) {
            this.log.warn(`bootstrap ${address} did not answer (${messageOf(err)}); retrying in ${Math.round(delay / 1000)}s`);
            delay = Math.min(delay * 2, 30_000);
          }
        }
        // Jittered: nodes that started together and failed together would retry together.
        this.later(connected ? 5_000 : delay * (0.5 + Math.random()), attempt);
      };
      void attempt();
    }
  }

  /**
   * Reads `peer`'s book: one request, answered in pages of BOOK_PAGE offers. This node's own
   * offer goes with the request; the peer publishes it on the topic if it is new there. Then,
   * FOLLOW_UP_MS later and LATE_FOLLOW_UP of a ttl after that, what came to the peer since.
   */
  private async readBook(peer: PeerId, attempt = 1, since?: number, followUp = 0): Promise<void> {
    if (!this.node || this.stopped) return;
    const id = peer.toString();
    // A follow-up only over a connection there is: a peer gone since is not dialled again at
    // the addresses it gave (that is the upkeep's to do, by its rules).
    if (since !== undefined && this.node.getConnections(peer).length === 0) return;
    this.read.set(id, Date.now());
    let stream: Stream | undefined;
    try {
      stream = await this.openStream(peer, PROTOCOLS.offer, AbortSignal.timeout(BOOK_TIMEOUT_MS));
      const channel = jsonChannel(stream);
      const request = { type: 'read', ...(since === undefined && this.own ? { offer: this.own } : {}), ...(since === undefined ? {} : { since }) };
      await channel.write(request, { signal: AbortSignal.timeout(BOOK_TIMEOUT_MS) });
      let at: unknown;
      for (let pages = 1; ; pages++) {
        const page = await channel.read<{ type?: string; offers?: unknown; more?: unknown; at?: unknown }>({ signal: AbortSignal.timeout(BOOK_TIMEOUT_MS) });
        if (page?.type !== 'page') throw new ProtocolError(`expected "page", got ${JSON.stringify(page?.type)}`);
        await this.take(page.offers, id);
        at ??= page.at;
        if (page.more !== true) break;
        if (pages === MAX_BOOK_PAGES) throw new ProtocolError(`a book of more than ${MAX_BOOK_PAGES} pages`);
      }
      await stream.close();
      if (since === undefined) this.cutOffSince = undefined;
      const next = [FOLLOW_UP_MS, this.options.offerTtlMs * LATE_FOLLOW_UP][followUp];
      if (next !== undefined && !this.options.client && typeof at === 'number') this.later(next, () => this.readBook(peer, 1, at as number, followUp + 1));
    } catch (err) {
      stream?.abort(err as Error);
      if (this.stopped) return;
      this.log.debug(`reading the book of ${id} failed (attempt ${attempt}): ${messageOf(err)}`);
      // A busy peer can miss the first read; else this node would wait for every offer's next publication.
      // A peer that sent what it should not is not asked again.
      const hostile = err instanceof ProtocolError && !(err instanceof StreamEndedError);
      if (attempt < BOOK_ATTEMPTS && !hostile) this.later(500 * attempt, () => this.readBook(peer, attempt + 1, since, followUp));
    }
  }

  /**
   * Dials peers from the book at random, a few at a time, while this node has fewer than
   * TOPIC_PEERS connected peers on the offers topic. An offer names whatever addresses its
   * signer likes, so the upkeep dials one address per peer and round, and only:
   * - a plain TCP address on an IP (/ip4|ip6/…/tcp/…): no relay (a peer behind NAT dials out
   *   itself, and a relay's slots are kept for jobs), no DNS name (any number of names can
   *   alias one victim), nothing libp2p would refuse without dialling;
   * - of a kind (public, private, loopback) this node has dialled out on itself, public
   *   first: a node on the internet dials nothing on its own host or networks because an
   *   offer says so, nor because a proxy's connections reach it from a private address;
   * - at most one per IP (IPv6: /64; loopback: per port) in a round; none at an IP and port
   *   that failed within an offer ttl, or that answered as another peer than this one; none at
   *   an IP with UPKEEP_HOST_FAILURES failures (loopback: UPKEEP_LOOPBACK_FAILURES).
   * A dial answered by another peer counts against the offer, not the address, and the
   * address is then dialled for the peer that answered only. Sybil offers naming a victim
   * draw at most UPKEEP_HOST_FAILURES attempts from a node per offer ttl.
   */
  private async keepTopicPeers(): Promise<void> {
    const node = this.node;
    const pubsub = this.pubsub;
    if (!node || !pubsub || this.stopped || this.upkeeping) return;
    const missing = TOPIC_PEERS - pubsub.getSubscribers(OFFERS_TOPIC).length;
    if (missing <= 0) return;
    const now = Date.now();
    for (const [endpoint, { at }] of this.answeredAs) if (now - at >= this.options.offerTtlMs) this.answeredAs.delete(endpoint);
    const kinds = new Set(node.getConnections().flatMap((c) => (c.direction === 'outbound' ? (dialTarget(c.remoteAddr)?.kind ?? []) : [])));
    const dialable = (t: DialTarget, peerId: string) =>
      kinds.has(t.kind) &&
      (this.answeredAs.get(t.endpoint)?.peerId ?? peerId) === peerId &&
      this.unreachable.count(t.endpoint) === 0 &&
      this.unreachable.count(t.host) < (t.kind === 'loopback' ? UPKEEP_LOOPBACK_FAILURES : UPKEEP_HOST_FAILURES);
    const round = new Set<string>();
    const roundKey = (t: DialTarget) => (t.kind === 'loopback' ? t.endpoint : t.host);
    const dials: { peerId: string; target: DialTarget }[] = [];
    for (const o of shuffled(this.book.offers())) {
      if (dials.length === Math.min(missing, UPKEEP_DIALS)) break;
      if (this.unreachable.count(o.peerId) > 0 || this.guard.isBanned(o.peerId)) continue;
      if (node.getConnections(peerIdFromString(o.peerId)).length > 0) continue;
      const target = o.multiaddrs
        .flatMap((a) => {
          const t = dialTarget(parsed(a));
          return t && dialable(t, o.peerId) && !round.has(roundKey(t)) ? [t] : [];
        })
        .sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind))[0];
      if (!target) continue;
      round.add(roundKey(target));
      dials.push({ peerId: o.peerId, target });
    }
    this.upkeeping = true;
    try {
      await Promise.all(
        dials.map(async ({ peerId, target }) => {
          try {
            await node.dial(withPeer(target.addr, peerId), { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) });
          } catch (err) {
            this.log.debug(`dialling ${peerId} at ${target.endpoint} for the offers topic failed: ${messageOf(err)}`);
            const other = answeredBy(err);
            if (other !== undefined) this.answeredAs.set(target.endpoint, { peerId: other, at: Date.now() });
            // The offer lied (or is stale), or libp2p refused before any packet: not the address's fault.
            if (other !== undefined || notDialled(err)) return this.unreachable.record(peerId);
            this.unreachable.record(target.endpoint);
            this.unreachable.record(target.host);
          }
        }),
      );
    } finally {
      this.upkeeping = false;
    }
  }

  /** This node's own offer and those it holds; those it took (or signed) at or after `since`. */
  private known(since = -Infinity): SignedOffer[] {
    const held = this.book.signedOffers(Date.now(), since);
    return this.own && this.own.offer.issuedAt >= since ? [this.own, ...held] : held;
  }

  /**
   * Admits offers from a page of `from`'s book. A forged or malformed offer ends the read
   * (an honest peer passes on only offers it checked).
   */
  private async take(raw: unknown, from: string): Promise<void> {
    if (!Array.isArray(raw)) throw new ProtocolError('offers must be an array');
    if (raw.length > BOOK_PAGE) throw new ProtocolError(`too many offers in a page (${raw.length})`);
    for (const item of raw) {
      const verdict = await this.admit(item);
      if (verdict === 'forged' || verdict === 'malformed') {
        this.log.warn(`dropped a ${verdict} offer for ${String((item as SignedOffer | null)?.offer?.peerId)} received from ${from}`);
        this.guard.offended(from, 'sent forged or malformed offers');
        throw new ProtocolError(`a ${verdict} offer in its book`);
      }
    }
  }

  /**
   * The book's verdict on an offer from the network. Most accepted offers are a node's
   * periodic re-signing of the same terms: only a new peer or new terms reach placement
   * (onOffersChanged: the dispatcher reads its queue again), and only new addresses the
   * peer store; at 10,000 nodes a node takes a thousand offers a second.
   */
  private async admit(raw: unknown, limit?: (peerId: string) => boolean): Promise<OfferVerdict> {
    const id = String((raw as SignedOffer | null)?.offer?.peerId);
    const before = this.book.held(id);
    const verdict = await this.book.consider(raw, Date.now(), limit);
    if (verdict !== 'accepted') return verdict;
    const after = this.book.held(id);
    if (!after || before?.terms === after.terms) return verdict;
    this.options.onOffersChanged?.();
    const { offer } = after;
    if (before && before.offer.multiaddrs.join(' ') === offer.multiaddrs.join(' ')) return verdict;
    const addrs = offer.multiaddrs.flatMap((a) => parsed(a) ?? []);
    if (addrs.length > 0) await this.node?.peerStore.merge(peerIdFromString(offer.peerId), { multiaddrs: addrs }).catch(() => {});
    return verdict;
  }

  /**
   * gossipsub's check of an offer before it is delivered and passed on. Reject (the peer
   * that passed it on loses score, and offends here): too big, not JSON, forged, malformed,
   * or more than OFFERS_PER_PEER_PER_SECOND from the offer's own node. Ignore (no penalty):
   * replayed or already held, expired in flight, this node's own, a book with no room, or a
   * burst passed on by others (they may reorder it).
   */
  private async validate(peer: string, message: Message): Promise<TopicValidatorResult> {
    const reject = (why: string) => {
      this.log.warn(`dropped an offer from ${peer}: ${why}`);
      this.guard.offended(peer, 'sent invalid offers');
      return TopicValidatorResult.Reject;
    };
    if (message.data.length > MAX_OFFER_BYTES) return reject(`${message.data.length} bytes`);
    let signed: SignedOffer;
    try {
      signed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(message.data)) as SignedOffer;
    } catch {
      return reject('not JSON');
    }
    const owner = typeof signed?.offer?.peerId === 'string' ? signed.offer.peerId : '';
    const flooding = () => (peer === owner ? reject(`more than ${OFFERS_PER_PEER_PER_SECOND} offers a second`) : TopicValidatorResult.Ignore);
    // Before the signature check, to spare it; then counted for good where the book takes the
    // offer: gossipsub checks a burst's messages at once, and each would pass a count taken
    // here before the first was recorded. Only checked, new offers count, so offers that
    // merely claim a node (unsigned, replayed) cannot use up its allowance.
    if (this.accepted.count(owner) >= OFFERS_PER_PEER_PER_SECOND) return flooding();
    const verdict = await this.admit(signed, (id) => {
      if (this.accepted.count(id) >= OFFERS_PER_PEER_PER_SECOND) return false;
      this.accepted.record(id);
      return true;
    });
    if (verdict === 'limited') return flooding();
    if (verdict === 'forged' || verdict === 'malformed') return reject(`a ${verdict} offer for ${owner}`);
    if (verdict !== 'accepted') return TopicValidatorResult.Ignore;
    return TopicValidatorResult.Accept;
  }

  /** The offer a peer hands over with a read of this node's book: its own, published on the topic for it when new. */
  private async handedOver(raw: unknown, from: string): Promise<void> {
    const owner = (raw as SignedOffer | null)?.offer?.peerId;
    if (typeof owner !== 'string' || owner !== from) throw new ProtocolError('handed over an offer that is not its own');
    const verdict = await this.admit(raw);
    if (verdict === 'forged' || verdict === 'malformed') throw new ProtocolError(`handed over a ${verdict} offer`);
    if (verdict !== 'accepted') return;
    await this.pubsub?.publish(OFFERS_TOPIC, offerMessage(raw as SignedOffer)).catch((err: unknown) => this.log.debug(`publishing the offer of ${from}: ${messageOf(err)}`));
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
      const message = await channel.read<{ type?: string; offer?: unknown; since?: unknown }>({ signal: AbortSignal.timeout(BOOK_TIMEOUT_MS) });
      if (message?.type !== 'read') throw new ProtocolError(`unknown message type ${JSON.stringify(message?.type)}`);
      if (message.since !== undefined && typeof message.since !== 'number') throw new ProtocolError('"since" must be a time in ms');
      if (this.readsBy.count(from) >= BOOK_READS_PER_TTL) {
        // Refused, not an offence: an honest peer's retries under load can get here too.
        throw new Error(`read this node's book more than ${BOOK_READS_PER_TTL} times in ${this.options.offerTtlMs / 1000}s`);
      }
      // Through a relay, the relay stands for the address: peers it relays share its budget.
      const relay = relayOf(connection.remoteAddr);
      const address = relay === undefined ? this.guard.addressOf(connection.remoteAddr) : `relay ${relay}`;
      if (address !== undefined && this.readsFrom.count(address) >= this.readsPerAddress) {
        throw new Error(`${address} read this node's book more than ${this.readsPerAddress} times in ${this.options.offerTtlMs / 1000}s (${BOOK_READS_PER_TTL} per peer it may connect, mesh.connections_per_ip)`);
      }
      this.readsBy.record(from);
      if (address !== undefined) this.readsFrom.record(address);
      if (message.offer !== undefined) await this.handedOver(message.offer, from);
      await this.subscribed(connection.remotePeer);
      // `at` is this node's clock: a follow-up read asks for what came since.
      const at = Date.now();
      const offers = this.known(message.since);
      let page: SignedOffer[] = [];
      let bytes = 0;
      for (const [i, signed] of offers.entries()) {
        page.push(signed);
        bytes += JSON.stringify(signed).length;
        const last = i === offers.length - 1;
        if (!last && page.length < BOOK_PAGE && bytes < BOOK_PAGE_BYTES - MAX_OFFER_BYTES) continue;
        await channel.write({ type: 'page', offers: page, more: !last, at }, { signal: AbortSignal.timeout(BOOK_TIMEOUT_MS) });
        page = [];
        bytes = 0;
      }
      if (offers.length === 0) await channel.write({ type: 'page', offers: [], more: false, at }, { signal: AbortSignal.timeout(BOOK_TIMEOUT_MS) });
      await stream.close();
    } catch (err) {
      this.failed(stream, from, PROTOCOLS.offer, err);
    }
  }

  /**
   * Waits (up to SUBSCRIPTION_WAIT_MS) until `peer`, if it speaks gossipsub, is known to be
   * on the offers topic: offers this node takes after that reach it by the topic, so a book
   * read from here on misses none.
   */
  private async subscribed(peer: PeerId): Promise<void> {
    const pubsub = this.pubsub;
    const on = () => pubsub!.getSubscribers(OFFERS_TOPIC).some((p) => p.equals(peer));
    if (!pubsub || on()) return;
    const protocols = (await this.node!.peerStore.get(peer).catch(() => undefined))?.protocols ?? [];
    if (!protocols.some((p) => pubsub.protocols.includes(p))) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pubsub.removeEventListener('subscription-change', check);
        resolve();
      };
      const check = () => on() && done();
      const timer = setTimeout(done, SUBSCRIPTION_WAIT_MS);
      pubsub.addEventListener('subscription-change', check);
    });
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

/**
 * The addresses a node puts in its offer, from those libp2p lists: none relayed through a
 * relay's loopback (it would lead a peer to itself); those peers elsewhere can use first
 * (public, then relayed, private, link-local, loopback), at most MAX_OFFER_ADDRS: a node
 * listening on every interface of a host with many (Docker makes one per network) would
 * otherwise sign an offer every peer drops as malformed.
 */
export function advertised(addrs: readonly Multiaddr[]): string[] {
  const rank = (a: Multiaddr) => {
    if (a.getComponents().some((c) => c.name === 'p2p-circuit')) return 0.5;
    const i = KIND_ORDER.indexOf(internalAddressKind(a.getComponents()[0]?.value ?? '') ?? 'public');
    return i < 0 ? KIND_ORDER.length : i;
  };
  return addrs
    .map((a) => ({ text: String(a), rank: rank(a) }))
    .filter(({ text }) => !/^\/ip(4\/127\.|6\/::1\/).*\/p2p-circuit/.test(text))
    .sort((x, y) => x.rank - y.rank)
    .slice(0, MAX_OFFER_ADDRS)
    .map(({ text }) => text);
}

/** A multiaddr from an offer; undefined when it does not parse. */
function parsed(addr: string): Multiaddr | undefined {
  try {
    return multiaddr(addr);
  } catch {
    return undefined;
  }
}

/** Where the upkeep may dial: a TCP address on an IP, what kind of address it is, and its keys for failures. */
interface DialTarget {
  addr: Multiaddr;
  kind: InternalKind | 'public';
  /** The IP address (IPv6: its /64). */
  host: string;
  /** The IP address and port. */
  endpoint: string;
}

/** `addr` as the upkeep may dial it: /ip4|ip6/…/tcp/…, a /p2p/… at most after; undefined for anything else, or an unspecified IP. */
function dialTarget(addr: Multiaddr | undefined): DialTarget | undefined {
  const components = addr?.getComponents() ?? [];
  if (components.length > 3 || (components.length === 3 && components[2]!.name !== 'p2p')) return undefined;
  const ip = components[0]?.name === 'ip4' || components[0]?.name === 'ip6' ? components[0].value : undefined;
  const port = components[1]?.name === 'tcp' ? components[1].value : undefined;
  if (ip === undefined || port === undefined) return undefined;
  const kind = internalAddressKind(ip) ?? 'public';
  if (kind === 'unspecified') return undefined;
  return { addr: addr!, kind, host: addressGroup(ip), endpoint: `${ip}:${port}` };
}

/** `addr` ending in /p2p/`peerId` and naming no other peer, so a dial checks whom it reached. */
function withPeer(addr: Multiaddr, peerId: string): Multiaddr {
  let bare = addr;
  while (bare.getComponents().some((c) => c.name === 'p2p')) bare = bare.decapsulateCode(421);
  return bare.encapsulate(`/p2p/${peerId}`);
}

/**
 * The peer id that answered a dial meant for another: noise throws an UnexpectedPeerError
 * ("Payload identity key <id> does not match expected …"), which libp2p's upgrader passes
 * on as an EncryptionFailedError with the same message and no cause. Undefined otherwise.
 */
function answeredBy(err: unknown): string | undefined {
  return causes(err)
    .map((e) => /identity key (\S+) does not match expected/.exec(e.message)?.[1])
    .find((id) => id !== undefined);
}

/** Whether libp2p refused a dial before sending anything: no address it can dial, or the gater. */
function notDialled(err: unknown): boolean {
  return causes(err).some((e) => ['NoValidAddressesError', 'DialDeniedError', 'InvalidMultiaddrError', 'InvalidParametersError', 'InvalidPeerIdError'].includes(e.name));
}

/** `err` and what it wraps (cause, AggregateError's errors). */
function causes(err: unknown, seen = new Set<unknown>()): Error[] {
  if (!(err instanceof Error) || seen.has(err)) return [];
  seen.add(err);
  return [err, ...causes(err.cause, seen), ...(err instanceof AggregateError ? err.errors.flatMap((e: unknown) => causes(e, seen)) : [])];
}

/** `items` in random order (Fisher–Yates). */
function shuffled<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function offerMessage(signed: SignedOffer): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(signed));
}

/**
 * gossipsub as the offers topic uses it. Messages carry no gossipsub signature: an offer is
 * signed by its own node's key, which the validator checks, and any node may publish a
 * peer's offer (the one a newcomer hands over). Scores come from misbehaviour only: each
 * invalid offer a peer passes on counts (squared, weight -20, decaying by 1 % a second), so
 * one costs -20 (below the gossip threshold of -10: no gossip to or from it) and two -80
 * (graylisted: all it sends is ignored) until they decay; the validator's offences ban it
 * after a few. Many peers behind one IP address lose score too (gossipsub's colocation
 * factor), except on loopback, where a development mesh lives.
 */
function gossipOptions(): Parameters<typeof gossipsub>[0] {
  return {
    globalSignaturePolicy: StrictNoSign,
    emitSelf: false,
    fallbackToFloodsub: false,
    allowPublishToZeroTopicPeers: true,
    ignoreDuplicatePublishError: true,
    runOnLimitedConnection: true,
    allowedTopics: [OFFERS_TOPIC],
    // A frame carries an offer (the validator holds it to MAX_OFFER_BYTES) with gossipsub's
    // framing and any control messages sent along: an offer just under the cap must pass.
    maxInboundDataLength: MAX_OFFER_BYTES + 16 * 1024,
    idontwantMinDataSize: 16 * 1024,
    D: GOSSIP_D,
    Dlo: GOSSIP_D / 2,
    Dhi: GOSSIP_DHI,
    scoreParams: {
      IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1']),
      topics: {
        [OFFERS_TOPIC]: createTopicScoreParams({
          topicWeight: 1,
          timeInMeshWeight: 0,
          firstMessageDeliveriesWeight: 0,
          meshMessageDeliveriesWeight: 0,
          meshFailurePenaltyWeight: 0,
          invalidMessageDeliveriesWeight: -20,
          invalidMessageDeliveriesDecay: 0.99,
        }),
      },
    },
  };
}
