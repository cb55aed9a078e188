/** How the node itself looks: GET /status and GET /peers. */

import type { Offer } from '../../domain/offer.js';
import type { SpecPolicy } from '../../domain/spec.js';
import { formatDuration, formatSize } from '../../domain/units.js';
import type { NodeStatus, PeerConnection, PeerList, ResourcesView } from '../../wire/gridx.js';

/** What the node knows of itself at one moment, for GET /status. */
export interface NodeState {
  node: { id: string; version: string };
  slots: { total: number; used: number; free: number };
  counts: { pending: number; scheduled: number; running: number };
  resources: ResourcesView;
  policy: SpecPolicy;
  mesh?: { multiaddrs: string[]; peers: number; connections: number; reachability: NodeStatus['reachability'] } | undefined;
}

/** Idle while a slot is free; the queue counts scheduled jobs as running. */
export function statusView(s: NodeState): NodeStatus {
  return {
    status: s.slots.free > 0 ? 'idle' : 'busy',
    nodeId: s.node.id,
    peerId: s.node.id,
    multiaddrs: s.mesh?.multiaddrs ?? [],
    peers: s.mesh?.peers ?? 0,
    connections: s.mesh?.connections ?? 0,
    ...(s.mesh?.reachability ? { reachability: s.mesh.reachability } : {}),
    version: s.node.version,
    slots: s.slots,
    queue: { pending: s.counts.pending, running: s.counts.running + s.counts.scheduled },
    resources: s.resources,
    limits: {
      cpus: s.policy.cpus,
      memory: formatSize(s.policy.memoryBytes),
      timeout: formatDuration(s.policy.timeoutMs),
      gpus: s.policy.maxGpus,
      networks: [...s.policy.allowedNetworks],
    },
  };
}

/** The peers whose offers this node holds, each with how it is connected now (undefined: not). */
export function peersView(peerId: string, offers: Offer[], connection: (peer: string) => PeerConnection | undefined): PeerList {
  return {
    peerId,
    peers: offers.map((offer) => {
      const how = connection(offer.peerId) ?? null;
      return { peerId: offer.peerId, connected: how !== null, connection: how, offer };
    }),
  };
}
