/**
 * The node itself: GET /status (idle or busy, slots, limits) and GET /peers in the Grid-X
 * dialect, and GET /metrics for Prometheus.
 */

import type { FastifyInstance } from 'fastify';
import type { SpecPolicy } from '../../domain/spec.js';
import type { Mesh } from '../../mesh/mesh.js';
import type { NodeMetrics } from '../../monitor/metrics.js';
import type { ResourceMonitor } from '../../monitor/monitor.js';
import type { Scheduler } from '../../scheduler/scheduler.js';
import type { JobStore } from '../../store/store.js';
import { peersView, statusView } from '../views/status.js';

export interface StatusRouteDeps {
  store: Pick<JobStore, 'countByStatus'>;
  scheduler: Pick<Scheduler, 'slots'>;
  monitor: Pick<ResourceMonitor, 'snapshot'>;
  /** Per-job limits, shown in /status. */
  policy: () => SpecPolicy;
  /** The mesh, when the node is part of one. */
  mesh: Pick<Mesh, 'peerId' | 'multiaddrs' | 'connectedPeers' | 'book' | 'reachability' | 'connectionType'> | undefined;
  node: { id: string; version: string };
  metrics?: Pick<NodeMetrics, 'text'>;
}

export function statusRoutes(deps: StatusRouteDeps) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.get('/status', async () => {
      const { mesh } = deps;
      return statusView({
        node: deps.node,
        slots: deps.scheduler.slots,
        counts: await deps.store.countByStatus(),
        resources: deps.monitor.snapshot(),
        policy: deps.policy(),
        mesh: mesh && { multiaddrs: mesh.multiaddrs, peers: mesh.book.size, connections: mesh.connectedPeers, reachability: mesh.reachability },
      });
    });

    app.get('/peers', async () => {
      const { mesh } = deps;
      if (!mesh) return peersView(deps.node.id, [], () => undefined);
      return peersView(mesh.peerId, mesh.book.offers(), (peer) => mesh.connectionType(peer));
    });

    const { metrics } = deps;
    if (metrics) {
      app.get('/metrics', async (_request, reply) => {
        const { contentType, body } = await metrics.text();
        return reply.type(contentType).send(body);
      });
    }
  };
}
