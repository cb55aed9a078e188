/** This node and the peers whose signed offers it holds, read again every 2 s. */

import type { NodeStatus, PeerList } from '../../wire/gridx.js';
import { get } from '../api.js';
import { ago, bytes } from '../format.js';
import { usePoll } from '../hooks.js';
import { Badge, Empty, ErrorState, Fields, Id, Loading, Table } from '../parts.js';

export function MeshView({ status, now }: { status: NodeStatus | undefined; now: number }) {
  const peers = usePoll((signal) => get<PeerList>('/peers', signal), 2_000);
  return (
    <section>
      <h2>This node</h2>
      {status ? <NodeCard status={status} /> : <Loading />}
      <h2>Peers</h2>
      {peers.error && <ErrorState error={peers.error} />}
      {!peers.data && !peers.error && <Loading />}
      {peers.data && peers.data.peers.length === 0 && (
        <Empty>
          No peers yet: this node is alone{status && status.multiaddrs.length > 0 ? '' : ' (its mesh is off)'}. Another node joins it with{' '}
          <code>gridx node --bootstrap {status?.multiaddrs[0] ?? '<multiaddr>'}</code>
        </Empty>
      )}
      {peers.data && peers.data.peers.length > 0 && (
        <Table label="peers" head={['Peer', 'Link', 'Status', 'Slots free', 'CPUs', 'Memory', 'GPUs', 'Price', 'API', 'Offer expires']}>
          {peers.data.peers.map(({ peerId, connected, offer }) => (
            <tr key={peerId} data-peer={peerId}>
              <td>
                <Id id={peerId} keep={14} />
              </td>
              <td>{connected ? 'connected' : 'known'}</td>
              <td>
                <Badge status={offer.status} />
              </td>
              <td>
                {offer.slots.free} / {offer.slots.total}
              </td>
              <td>{offer.cpus}</td>
              <td>{bytes(offer.memoryBytes)}</td>
              <td>{offer.gpus}</td>
              <td title="credits per CPU-second">{offer.price}</td>
              <td>
                <code>{offer.apiUrl}</code>
              </td>
              <td>{ago(offer.expiresAt, now)}</td>
            </tr>
          ))}
        </Table>
      )}
    </section>
  );
}

function NodeCard({ status }: { status: NodeStatus }) {
  const r = status.resources;
  const { limits } = status;
  return (
    <Fields
      rows={[
        ['Peer id', <Id id={status.peerId} />],
        ['Status', <Badge status={status.status} />],
        ['Slots', `${status.slots.used} busy of ${status.slots.total}`],
        ['Queue', `${status.queue.pending} pending, ${status.queue.running} running`],
        [
          'Machine',
          `${r.cpus} CPUs at ${Math.round(r.cpuLoadPercent)}%, ${bytes(r.memoryFreeBytes)} free of ${bytes(r.memoryTotalBytes)}` +
            (r.gpus.length > 0 ? `, ${r.gpus.length} GPU` : ''),
        ],
        ['Per-job limits', `${limits.cpus} CPU, ${limits.memory}, ${limits.timeout}, networks: ${limits.networks.join(', ') || 'none'}`],
        ['Mesh', `${status.connections} connections, ${status.peers} offers held`],
        ['Version', status.version],
        [
          'Listens on',
          status.multiaddrs.length > 0 &&
            status.multiaddrs.map((m) => (
              <code key={m} class="block">
                {m}
              </code>
            )),
          'wide',
        ],
      ]}
    />
  );
}
