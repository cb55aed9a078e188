/**
 * The mesh: a libp2p node (TCP, noise, yamux, identify, ping, Kademlia DHT, gossipsub)
 * that keeps this node's signed offer published and a book of its peers' offers.
 *
 * Offers travel by gossipsub on one topic (OFFERS_TOPIC): a node publishes its own offer
 * when it changes and well before it expires, and every node checks each offer before it
 * passes it on (signed by the peer id it names, published by that peer, newer than the
 * last seen, not expired); peers that send bad ones lose gossipsub score. A node that
 * joins asks a peer for its current book in pages (/gridx/offer/2.0.0), once, instead of
 * waiting for every offer's next publication; clients (gridx run --mesh) and partitioned
 * nodes find peers through the DHT, where every node provides OFFERS_KEY, and ask them.
 */

import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { type GossipSub, type Message, TopicValidatorResult, gossipsub } from '@libp2p/gossipsub';
import { createTopicScoreParams } from '@libp2p/gossipsub/score';
import { identify } from '@libp2p/identify';
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface';
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht';
import { peerIdFromString } from '@libp2p/peer-id';
import { ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { type Offer, type SignedOffer, canonicalJson } from '../domain/offer.js';
import { GridxError, messageOf } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Identity } from './identity.js';
import { OfferBook, signOffer } from './offer-book.js';
import { PeerGuard, type PeerGuardOptions } from './peer-guard.js';
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
/** Offers in one page of a book; a page is one request. */
const BOOK_PAGE = 1000;
/** Pages one catch-up reads at most: a book of this many pages is past any cap. */
const MAX_BOOK_PAGES = 20;
const BOOK_ATTEMPTS = 3;
const BOOK_TIMEOUT_MS = 5_000;
/** Peers a joining node reads the book of (besides DHT providers it finds). */
const CATCH_UPS = 2;
/**
 * gossipsub's mesh degree: the peers a node passes each offer to at once (D), and how many
 * it keeps before pruning (Dhi). A node that joined through one bootstrap peer has that hub
 * as its only topic peer; with gossipsub's default Dhi of 12 a hub would pass offers on to
 * a dozen of its peers and leave the rest to lazy gossip, which can miss a node during the
 * first seconds, so a hub keeps up to GOSSIP_DHI. Offers are small and rare enough for that.
 */
const GOSSIP_D = 8;
const GOSSIP_DHI = 64;
/**
 * gossipsub's heartbeat (default 1 s): meshes form and lazy gossip goes out on it, so a
 * node that just joined waits for it before offers are passed on to it.
 */
const HEARTBEAT_MS = 250;
/**
 * After its first publication that reached a peer, a node publishes again this long after:
 * while a joining node's (and its neighbours') gossipsub meshes are still forming, a
 * message can miss nodes that are neither in a mesh nor gossiped to in time, and would
 * then wait for the next publication (offer_ttl / 3).
 */
const JOIN_REPUBLISH_MS = [500, 1500];
/** How long status changes gather before the offer is re-signed. */
const PUBLISH_DEBOUNCE_MS = 5;
/** A node publishes at most one offer in this long: busy nodes change status with every job. */
const MIN_PUBLISH_INTERVAL_MS = 250;
/** Offers one publisher may have accepted in a second; past it they are dropped (and, sent by the publisher itself, rejected). */
const OFFERS_PER_PUBLISHER_PER_SECOND = 10;
/** Largest offer message on the topic; an offer is well under a kilobyte. */
const MAX_OFFER_BYTES = 64 * 1024;

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
  guard?: Partial<Omit<PeerGuardOptions, 'log'>>;
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
  /** Peers whose book this node read (or is reading) since it started. */
  private readonly caughtUp = new Set<string>();
  /** The last publication reached no peer: publish again when the first one subscribes. */
  private unheard = false;
  private everHeard = false;
  private publishedAt = 0;
  /** When each publisher's last accepted offers came in (at most OFFERS_PER_PUBLISHER_PER_SECOND each). */
  private readonly accepted = new Map<string, number[]>();
  private stopped = false;
  private readonly log: Logger;
  private readonly guard: PeerGuard;

  constructor(private readonly options: MeshOptions) {
    this.book = new OfferBook(options.identity.peerId.toString());
    this.log = options.log;
    this.guard = new PeerGuard({ connectionsPerIp: 8, streamsPerSecond: 20, banMs: 600_000, strikes: STRIKES, ...options.guard, log: options.log });
  }

  get peerId(): string {
    return this.options.identity.peerId.toString();
  }

  get multiaddrs(): string[] {
    return this.node?.getMultiaddrs().map(String) ?? [];
  }

  get connectedPeers(): number {
    return this.node?.getPeers().length ?? 0;
  }

  get libp2p(): Libp2p {
    if (!this.node) throw new Error('mesh not started');
    return this.node;
  }

  async start(): Promise<void> {
    const { options } = this;
    const node = await listening(options, () => createLibp2p({
      privateKey: options.identity.privateKey,
      addresses: { listen: options.client ? [] : [`/ip4/${options.host}/tcp/${options.port}`] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionGater: this.guard.gater(),
      connectionManager: {
        maxConnections: 1000,
        inboundConnectionThreshold: 1000,
        maxIncomingPendingConnections: 1000,
      },
      services: {
        identify: identify(),
        ping: ping(),
        ...(options.client ? {} : { pubsub: gossipsub(gossipOptions()) }),
        dht: kadDHT({
          protocol: DHT_PROTOCOL,
          clientMode: options.client ?? false,
          // Loopback and private addresses are normal for a development mesh.
          peerInfoMapper: passthroughMapper,
          initialQuerySelfInterval: 0,
          allowQueryWithZeroPeers: true,
        }),
      },
    }));
    this.node = node;
    this.guard.attach(node);
    if (!options.client) {
      await node.handle(PROTOCOLS.offer, (stream, connection) => this.onOfferStream(stream, connection), {
        maxInboundStreams: 64,
      });
      await node.handle(PROTOCOLS.job, (stream, connection) => this.onJobStream(stream, connection), {
        maxInboundStreams: 256,
      });
      const pubsub = this.pubsub!;
      pubsub.topicValidators.set(OFFERS_TOPIC, (peer, message) => this.validate(peer.toString(), message));
      pubsub.subscribe(OFFERS_TOPIC);
      pubsub.addEventListener('subscription-change', (event) => {
        const joined = event.detail.subscriptions.some((s) => s.subscribe && s.topic === OFFERS_TOPIC);
        if (joined && this.unheard) void this.publish();
      });
    }
    node.addEventListener('peer:identify', (event) => {
      const peer = event.detail.peerId;
      if (event.detail.protocols.includes(PROTOCOLS.offer) && this.caughtUp.size < CATCH_UPS) void this.catchUp(peer);
    });
    if (!options.client) {
      await this.publish();
      // Well before expiry, so that peers never see this node's offer lapse.
      this.every(Math.max(options.offerTtlMs / 3, 500), () => this.publish());
      this.every(60_000, () => this.provide());
      this.every(60_000, () => {
        const now = Date.now();
        for (const [id, times] of this.accepted) if (times.every((at) => now - at >= 1000)) this.accepted.delete(id);
      });
    }
    this.every(15_000, () => this.discover());
    this.bootstrapLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.publishTimer);
    await this.node?.stop();
  }

  private get pubsub(): GossipSub | undefined {
    return (this.node?.services as { pubsub?: GossipSub } | undefined)?.pubsub;
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

  /** Signs the current offer and publishes it on the offers topic. */
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
      const { recipients } = await this.pubsub!.publish(OFFERS_TOPIC, new TextEncoder().encode(JSON.stringify(this.own)));
      const heard = recipients.length > 0;
      if (heard && !this.everHeard) {
        this.everHeard = true;
        for (const ms of JOIN_REPUBLISH_MS) setTimeout(() => void this.publish(), ms).unref();
      }
      this.unheard = !heard;
    } catch (err) {
      this.log.warn(`publishing the offer failed: ${messageOf(err)}`);
    }
  }

  /** Opens a /gridx/job stream to `peerId`, dialling the addresses from its offer. */
  async openJobChannel(peerId: string, signal: AbortSignal): Promise<JsonChannel> {
    const stream = await this.libp2p.dialProtocol(peerIdFromString(peerId), PROTOCOLS.job, { signal });
    return jsonChannel(stream);
  }

  /** Providers of OFFERS_KEY through the DHT, and their offers (for clients). */
  async discover(signal: AbortSignal = AbortSignal.timeout(10_000)): Promise<number> {
    if (!this.node || this.stopped) return 0;
    let found = 0;
    try {
      const key = await offersKey();
      for await (const provider of this.node.contentRouting.findProviders(key, { signal })) {
        if (provider.id.equals(this.options.identity.peerId)) continue;
        found++;
        if (this.book.get(provider.id.toString())) continue;
        if (provider.multiaddrs.length > 0) await this.node.peerStore.merge(provider.id, { multiaddrs: provider.multiaddrs });
        await this.catchUp(provider.id);
      }
    } catch (err) {
      if (!signal.aborted) this.log.debug(`discovery: ${messageOf(err)}`);
    }
    return found;
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
        const timer = setTimeout(() => void attempt(), connected ? 5_000 : delay);
        timer.unref();
        this.timers.push(timer);
      };
      void attempt();
    }
  }

  /** Reads `peer`'s current offer book, a page per request, and takes what is new. */
  private async catchUp(peer: PeerId, attempt = 1): Promise<void> {
    if (!this.node || this.stopped) return;
    const id = peer.toString();
    this.caughtUp.add(id);
    try {
      let after: string | undefined;
      for (let page = 0; page < MAX_BOOK_PAGES; page++) {
        const signal = AbortSignal.timeout(BOOK_TIMEOUT_MS);
        const stream = await this.node.dialProtocol(peer, PROTOCOLS.offer, { signal });
        try {
          const channel = jsonChannel(stream);
          await channel.write({ type: 'book', ...(after ? { after } : {}), limit: BOOK_PAGE }, { signal });
          const reply = await channel.read<{ type?: string; offers?: unknown; next?: unknown }>({ signal });
          if (reply?.type !== 'book') throw new ProtocolError(`expected "book", got ${JSON.stringify(reply?.type)}`);
          await this.take(reply.offers, id);
          await stream.close();
          if (typeof reply.next !== 'string') return;
          after = reply.next;
        } catch (err) {
          stream.abort(err as Error);
          throw err;
        }
      }
    } catch (err) {
      if (this.stopped) return;
      this.log.debug(`reading the offer book of ${id} failed (attempt ${attempt}): ${messageOf(err)}`);
      // A busy peer can miss the first request; else this node would wait for every offer's next publication.
      if (attempt < BOOK_ATTEMPTS) setTimeout(() => void this.catchUp(peer, attempt + 1), 500 * attempt).unref();
      else this.caughtUp.delete(id);
    }
  }

  /** One page of the book, in peer id order after `after`: this node's own offer and those it holds. */
  private bookPage(after: string | undefined, limit: number): { offers: SignedOffer[]; next?: string } {
    const all = (this.own ? [this.own, ...this.book.signedOffers()] : this.book.signedOffers())
      .filter((s) => after === undefined || s.offer.peerId > after)
      .sort((a, b) => (a.offer.peerId < b.offer.peerId ? -1 : 1));
    const offers = all.slice(0, limit);
    return all.length > limit ? { offers, next: offers.at(-1)!.offer.peerId } : { offers };
  }

  /** Admits offers read from `from`'s book; the new ones' addresses go to the peer store. */
  private async take(raw: unknown, from: string): Promise<void> {
    if (!Array.isArray(raw)) throw new ProtocolError('offers must be an array');
    if (raw.length > BOOK_PAGE) throw new ProtocolError(`too many offers (${raw.length})`);
    let fresh = 0;
    for (const item of raw) {
      const verdict = await this.book.consider(item);
      if (verdict === 'accepted') {
        fresh++;
        await this.remember(item as SignedOffer);
      } else if (verdict === 'forged' || verdict === 'malformed') {
        this.log.warn(`dropped a ${verdict} offer for ${(item as SignedOffer)?.offer?.peerId ?? 'unknown'} received from ${from}`);
      }
    }
    if (fresh > 0) this.options.onOffersChanged?.();
  }

  /** The peer store learns where an offer's node listens. */
  private async remember(signed: SignedOffer): Promise<void> {
    const addrs = signed.offer.multiaddrs.flatMap((a) => {
      try {
        return [multiaddr(a)];
      } catch {
        return [];
      }
    });
    if (addrs.length > 0) await this.node?.peerStore.merge(peerIdFromString(signed.offer.peerId), { multiaddrs: addrs }).catch(() => {});
  }

  /**
   * gossipsub's check of an offer before it is delivered and passed on. Reject (the
   * forwarding peer loses score, and counts an offence here): not a signed message, not
   * JSON, an offer in another peer's name, a forged or malformed offer. Ignore (no
   * penalty): an offer already seen or newer seen (replayed), expired in flight, our own.
   */
  private async validate(peer: string, message: Message): Promise<TopicValidatorResult> {
    const reject = (why: string) => {
      this.log.warn(`dropped an offer from ${peer}: ${why}`);
      this.guard.offended(peer, 'sent invalid offers');
      return TopicValidatorResult.Reject;
    };
    if (message.type !== 'signed') return reject('unsigned message');
    if (message.data.length > MAX_OFFER_BYTES) return reject(`${message.data.length} bytes`);
    let signed: SignedOffer;
    try {
      signed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(message.data)) as SignedOffer;
    } catch {
      return reject('not JSON');
    }
    const publisher = message.from.toString();
    if (signed?.offer?.peerId !== publisher) return reject(`an offer for ${String(signed?.offer?.peerId)} published by ${publisher}`);
    const now = Date.now();
    const recent = (this.accepted.get(publisher) ?? []).filter((at) => now - at < 1000);
    if (recent.length >= OFFERS_PER_PUBLISHER_PER_SECOND) {
      // Forwarders may pass on a burst in another order than it was sent: only the publisher itself is blamed.
      return peer === publisher ? reject(`more than ${OFFERS_PER_PUBLISHER_PER_SECOND} offers a second`) : TopicValidatorResult.Ignore;
    }
    const verdict = await this.book.consider(signed);
    if (verdict === 'forged' || verdict === 'malformed') return reject(`a ${verdict} offer for ${publisher}`);
    if (verdict !== 'accepted') return TopicValidatorResult.Ignore;
    recent.push(now);
    this.accepted.set(publisher, recent);
    await this.remember(signed);
    this.options.onOffersChanged?.();
    return TopicValidatorResult.Accept;
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
      const message = await channel.read<{ type?: string; after?: unknown; limit?: unknown }>({
        signal: AbortSignal.timeout(BOOK_TIMEOUT_MS),
      });
      if (message?.type !== 'book') throw new ProtocolError(`unknown message type ${JSON.stringify(message?.type)}`);
      if (message.after !== undefined && typeof message.after !== 'string') throw new ProtocolError('"after" must be a peer id');
      const limit = typeof message.limit === 'number' && Number.isInteger(message.limit) && message.limit > 0 ? Math.min(message.limit, BOOK_PAGE) : BOOK_PAGE;
      await channel.write({ type: 'book', ...this.bookPage(message.after, limit) });
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

/**
 * gossipsub as the offers topic uses it. Scores come from misbehaviour only: each invalid
 * offer a peer forwards counts (squared, weight -20, decaying by 1 % a second), so one
 * costs -20 (below the gossip threshold of -10: no gossip to or from it) and two -80
 * (graylisted: everything it sends is ignored) until they decay. Many peers behind one IP
 * address lose score too (gossipsub's colocation factor), except on loopback, where a
 * development mesh lives. A node publishes even with no topic peer yet, and publishes
 * again when the first one subscribes.
 */
function gossipOptions(): Parameters<typeof gossipsub>[0] {
  return {
    emitSelf: false,
    fallbackToFloodsub: false,
    D: GOSSIP_D,
    Dlo: GOSSIP_D / 2,
    Dhi: GOSSIP_DHI,
    heartbeatInterval: HEARTBEAT_MS,
    allowPublishToZeroTopicPeers: true,
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
