/**
 * Whether peers can reach this node, and what follows from it. A node that peers outside
 * its own networks do not reach holds a slot on a relay (circuit relay v2) and so gets a
 * relayed address, which its signed offer carries; a node they do reach relays for the
 * others (mesh.relay auto).
 *
 * libp2p's AutoNAT verifies public addresses by dial-backs from four peers and ignores
 * private address ranges, so on its own it says nothing in a small mesh or one on private
 * ranges. This service also counts what it sees: a direct connection that a peer from
 * outside this node's networks opened to it proves that it is reachable. A mesh whose
 * peers all share this node's networks (one machine, one LAN) needs no relay: "local".
 */

import net from 'node:net';
import os from 'node:os';
import type { Connection, Libp2pEvents, PeerStore, Startable, StreamHandler } from '@libp2p/interface';
import type { AddressManager, ConnectionManager, Registrar, TransportManager } from '@libp2p/interface-internal';
import { isPrivate } from '@libp2p/utils';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import type { RelayMode } from '../config/schema.js';
import type { Logger } from '../logger.js';

/** local: every peer so far is on this node's networks; public: outsiders reach it; private: they do not. */
export type Reachability = 'local' | 'public' | 'private';
export type ConnectionType = 'direct' | 'relayed' | 'hole-punched';

/** The protocol a circuit relay v2 server answers (@libp2p/circuit-relay-v2's RELAY_V2_HOP_CODEC). */
export const RELAY_HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop';
const RELAY_STOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/stop';

type Listener = (event: CustomEvent) => void;

export interface ReachabilityComponents {
  events: { addEventListener(name: string, fn: Listener): void; removeEventListener(name: string, fn: Listener): void };
  addressManager: AddressManager;
  connectionManager: ConnectionManager;
  registrar: Registrar;
  transportManager: TransportManager;
  peerStore: PeerStore;
}

export interface ReachabilityInit {
  mode: RelayMode;
  log: Logger;
  /** Called when the state, the relays held or the relay service changed. */
  onChange?: () => void;
  /** This host's networks as CIDRs; default: its interfaces' (os.networkInterfaces). */
  networks?: () => string[];
}

/** A relayed connection: its address goes through a relay (/p2p-circuit). */
export function isRelayed(connection: Pick<Connection, 'remoteAddr'>): boolean {
  return connection.remoteAddr.getComponents().some((c) => c.name === 'p2p-circuit');
}

export class ReachabilityService implements Startable {
  private current: Reachability = 'local';
  private reachedFromOutside = false;
  private reserving = false;
  private serving = false;
  private hop?: StreamHandler;
  private own?: { list: net.BlockList; at: number };
  private readonly holePunched = new Set<string>();
  private relays = new Set<string>();
  /**
   * Relays this node chose to reserve a slot on (reserve()), until its connection to them ends; only
   * these carry relayed connections to it (onlyChosenRelays(), and the peer guard's gater),
   * and only their circuit addresses are advertised.
   */
  private readonly chosen = new Set<string>();
  private readonly listeners: Array<[string, Listener]> = [];

  constructor(
    private readonly components: ReachabilityComponents,
    private readonly init: ReachabilityInit,
  ) {}

  get state(): Reachability {
    return this.current;
  }

  /** Whether this node relays for peers behind NAT now. */
  get relaying(): boolean {
    return this.serving;
  }

  /** Peer ids of the relays this node holds a slot on. */
  get relayPeers(): string[] {
    return [...this.relays];
  }

  /** Whether `relay` is one this node chose to hold a slot on: relayed connections come only through those. */
  reservedOn(relay: string): boolean {
    return this.chosen.has(relay);
  }

  /** Whether `addr` is this node's own relayed address through a relay it did not choose. */
  foreignRelay(addr: Multiaddr): boolean {
    const relay = relayOf(addr);
    return relay !== undefined && !this.chosen.has(relay);
  }

  /**
   * The circuit relay server's stream handler. With mesh.relay auto, the relay is offered
   * (its protocol handled) only while this node is public; the server itself stays up.
   */
  relayHandler(handler: StreamHandler): void {
    this.hop = handler;
  }

  start(): void {
    const on = <K extends keyof Libp2pEvents>(name: K, fn: (event: Libp2pEvents[K]) => void) => {
      const listener = fn as Listener;
      this.components.events.addEventListener(name, listener);
      this.listeners.push([name, listener]);
    };
    on('connection:open', (event) => this.opened(event.detail));
    on('connection:close', (event) => {
      this.holePunched.delete(event.detail.id);
      // A slot lives on the connection to its relay: with the last one gone, the relay is
      // chosen again only if reserve() takes it again.
      const { remotePeer, id } = event.detail;
      if (!this.components.connectionManager.getConnections(remotePeer).some((c) => c.id !== id && c.status === 'open')) this.chosen.delete(remotePeer.toString());
      this.evaluate();
    });
    on('self:peer:update', () => this.addressesChanged());
    // A peer that turns out to relay (now, or after it became public itself) may take our slot.
    on('peer:identify', () => void this.reserve());
    on('peer:update', () => void this.reserve());
  }

  async afterStart(): Promise<void> {
    // The relay server registered its protocol as it started; in auto it waits for proof.
    if (this.init.mode === 'auto') await this.components.registrar.unhandle(RELAY_HOP_PROTOCOL);
    this.serving = this.init.mode === 'on';
    await this.onlyChosenRelays();
  }

  /**
   * The relay transport takes a relayed connection (a STOP) from any connected peer, and
   * before reading it listens on that peer as a relay, taking a slot there: a peer could
   * give this node its own relay, with addresses of its choosing. Its handler is wrapped so
   * that STOPs from relays this node did not choose are reset unread.
   */
  private async onlyChosenRelays(): Promise<void> {
    const { registrar } = this.components;
    if (!registrar.getProtocols().includes(RELAY_STOP_PROTOCOL)) return;
    const { handler, options } = registrar.getHandler(RELAY_STOP_PROTOCOL);
    await registrar.unhandle(RELAY_STOP_PROTOCOL);
    await registrar.handle(
      RELAY_STOP_PROTOCOL,
      (stream, connection) => {
        if (this.chosen.has(connection.remotePeer.toString())) return handler(stream, connection);
        stream.abort(new Error('relayed connections come only through relays this node chose'));
      },
      options,
    );
  }

  stop(): void {
    for (const [name, listener] of this.listeners) this.components.events.removeEventListener(name, listener);
    this.listeners.length = 0;
  }

  /** How this node is connected to `peer` now: undefined when it is not. */
  connectionType(peer: string): ConnectionType | undefined {
    const connections = this.components.connectionManager.getConnections().filter((c) => c.remotePeer.toString() === peer);
    const direct = connections.find((c) => !isRelayed(c));
    if (direct) return this.holePunched.has(direct.id) ? 'hole-punched' : 'direct';
    return connections.length > 0 ? 'relayed' : undefined;
  }

  private opened(connection: Connection): void {
    if (!isRelayed(connection)) {
      // A direct connection to a peer already reached through a relay: DCUtR punched it.
      const others = this.components.connectionManager.getConnections(connection.remotePeer);
      if (others.some((c) => c.id !== connection.id && isRelayed(c))) this.holePunched.add(connection.id);
      else if (connection.direction === 'inbound' && this.outside(connection.remoteAddr)) this.reachedFromOutside = true;
    }
    this.evaluate();
  }

  private evaluate(): void {
    const before = this.current;
    const connections = this.components.connectionManager.getConnections();
    if (this.reachedFromOutside || this.verifiedPublic()) this.current = 'public';
    else if (this.current === 'local' && connections.some((c) => isRelayed(c) || this.outside(c.remoteAddr))) this.current = 'private';
    if (this.current === before) return;
    this.init.log.info(
      this.current === 'public'
        ? 'peers from outside this node\'s networks reach it directly: it is publicly reachable'
        : 'peers outside this node\'s networks have not reached it directly (behind NAT or a firewall?): it holds a slot on a relay so that they can',
    );
    if (this.current === 'private') void this.reserve();
    if (this.current === 'public' && this.init.mode === 'auto') void this.serve();
    this.init.onChange?.();
  }

  /**
   * Reserves a slot on a relay this node is directly connected to, by listening on the
   * relay's /p2p-circuit address; one at a time, and only while it has none. Not the
   * transport's own search (listening on a bare /p2p-circuit): that starts a DHT random
   * walk which, on a small mesh, spins without yielding and stalls the node.
   */
  private async reserve(): Promise<void> {
    if (this.reserving || this.current !== 'private' || this.relays.size > 0) return;
    this.reserving = true;
    try {
      for (const connection of this.components.connectionManager.getConnections()) {
        if (isRelayed(connection) || !this.outside(connection.remoteAddr)) continue;
        const peer = connection.remotePeer;
        const protocols = (await this.components.peerStore.get(peer).catch(() => undefined))?.protocols ?? [];
        if (!protocols.includes(RELAY_HOP_PROTOCOL)) continue;
        const base = connection.remoteAddr.getComponents().filter((c) => c.name !== 'p2p');
        const circuit = multiaddr(`${base.map((c) => `/${c.name}/${c.value}`).join('')}/p2p/${peer}/p2p-circuit`);
        // Chosen before listening: the new address may be announced before listen() returns.
        const known = this.chosen.has(peer.toString());
        this.chosen.add(peer.toString());
        try {
          await this.components.transportManager.listen([circuit]);
          return;
        } catch (err) {
          if (!known) this.chosen.delete(peer.toString());
          this.init.log.debug(`no slot on the relay ${peer}: ${(err as Error).message}`);
        }
      }
    } finally {
      this.reserving = false;
    }
  }

  private async serve(): Promise<void> {
    if (this.serving || !this.hop) return;
    this.serving = true;
    await this.components.registrar.handle(RELAY_HOP_PROTOCOL, this.hop, { runOnLimitedConnection: true });
    this.init.log.info('relaying for peers behind NAT (mesh.relay auto)');
    this.init.onChange?.();
  }

  private addressesChanged(): void {
    const now = new Set(this.components.addressManager.getAddresses().flatMap((a) => relayOf(a) ?? []).filter((r) => this.chosen.has(r)));
    for (const relay of now) if (!this.relays.has(relay)) this.init.log.info(`reachable through the relay ${relay}`);
    for (const relay of this.relays) {
      if (now.has(relay)) continue;
      this.init.log.warn(
        now.size > 0
          ? `lost the relay ${relay}; still reachable through ${[...now].join(', ')}`
          : `lost the relay ${relay}: peers outside this node's networks cannot reach it until it holds a slot on another relay (looking for one)`,
      );
    }
    const changed = now.size !== this.relays.size || [...now].some((r) => !this.relays.has(r));
    this.relays = now;
    this.evaluate();
    if (changed) {
      this.init.onChange?.();
      void this.reserve();
    }
  }

  /** An address AutoNAT verified that is neither private nor relayed. */
  private verifiedPublic(): boolean {
    return this.components.addressManager.getAddresses().some((a) => relayOf(a) === undefined && !isPrivate(a));
  }

  /** Whether `addr`'s IP lies outside every network this host is on (a relayed address is outside). */
  private outside(addr: Multiaddr): boolean {
    const ip = addr.getComponents().find((c) => c.name === 'ip4' || c.name === 'ip6');
    if (!ip?.value) return false;
    const now = Date.now();
    if (!this.own || now - this.own.at > 10_000) this.own = { list: blockList(this.init.networks?.() ?? interfaceNetworks()), at: now };
    return !this.own.list.check(ip.value, ip.name === 'ip4' ? 'ipv4' : 'ipv6');
  }
}

/** The peer id of the relay a /p2p-circuit address goes through. */
export function relayOf(addr: Multiaddr): string | undefined {
  const components = addr.getComponents();
  const circuit = components.findIndex((c) => c.name === 'p2p-circuit');
  if (circuit < 1) return undefined;
  return components[circuit - 1]?.name === 'p2p' ? components[circuit - 1]!.value : undefined;
}

function interfaceNetworks(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).flatMap((i) => (i.cidr ? [i.cidr] : [])));
}

function blockList(cidrs: string[]): net.BlockList {
  const list = new net.BlockList();
  for (const cidr of cidrs) {
    const [address, bits] = cidr.split('/');
    const type = net.isIPv6(address!) ? 'ipv6' : 'ipv4';
    try {
      list.addSubnet(address!, Number(bits), type);
    } catch {
      // An interface address Node cannot read back (a scoped IPv6 one): not a network peers are on.
    }
  }
  return list;
}

export function reachability(init: ReachabilityInit): (components: ReachabilityComponents) => ReachabilityService {
  return (components) => new ReachabilityService(components, init);
}
