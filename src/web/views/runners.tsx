/** The runners that pull work from this node (gridx runner), online while they heartbeat. */

import type { RunnerList } from '../../wire/runners.js';
import { get } from '../api.js';
import { ago } from '../format.js';
import { usePoll } from '../hooks.js';
import { Badge, Empty, ErrorState, Id, Loading, Table } from '../parts.js';

export function RunnersView({ now }: { now: number }) {
  const runners = usePoll((signal) => get<RunnerList>('/api/runners', signal), 3_000);
  return (
    <section>
      <h2>Runners</h2>
      {runners.error && <ErrorState error={runners.error} />}
      {!runners.data && !runners.error && <Loading />}
      {runners.data && runners.data.runners.length === 0 && (
        <Empty>
          No runners. A machine joins this node as a worker with <code>gridx runner --server {location.origin} --key &lt;runner key&gt;</code>
        </Empty>
      )}
      {runners.data && runners.data.runners.length > 0 && (
        <Table label="runners" head={['Runner', 'Name', 'Status', 'Running', 'Limits', 'Version', 'Last heartbeat']}>
          {runners.data.runners.map((r) => (
            <tr key={r.id}>
              <td>
                <Id id={r.id} keep={12} />
              </td>
              <td>{r.name}</td>
              <td>
                <Badge status={r.status} />
              </td>
              <td>
                {r.running} / {r.slots}
              </td>
              <td>
                {r.limits.cpu} CPU, {r.limits.memory}, {r.limits.timeout}
              </td>
              <td>{r.version}</td>
              <td title={r.last_heartbeat_at}>{ago(r.last_heartbeat_at, now)}</td>
            </tr>
          ))}
        </Table>
      )}
    </section>
  );
}
