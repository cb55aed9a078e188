/** The jobs this viewer may see, newest first, filterable by status and updated live. */

import { useEffect, useRef, useState } from 'preact/hooks';
import { JOB_STATUSES } from '../../domain/job.js';
import type { JobList } from '../../wire/gridx.js';
import { followEvents, get, type StreamState } from '../api.js';
import { ago, duration, shellJoin } from '../format.js';
import { usePoll } from '../hooks.js';
import { Badge, Empty, ErrorState, Id, Loading, Table } from '../parts.js';

const PAGE = 50;

export function JobsView({ now }: { now: number }) {
  const [status, setStatus] = useState('');
  const [stream, setStream] = useState<StreamState>('connecting');
  const query = `/jobs?limit=${PAGE}${status ? `&status=${status}` : ''}`;
  const jobs = usePoll((signal) => get<JobList>(query, signal), 10_000, [query]);
  const { reload } = jobs;

  // Every change reads the page again, at most every 300 ms: the list shows what the
  // node holds, never a guess assembled from events.
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const soon = () => (timer ??= setTimeout(() => ((timer = undefined), reload()), 300));
    const stop = followEvents('/api/events', {
      live: true,
      onEvent: (event) => event.type !== 'output' && soon(),
      onState: (state) => {
        setStream(state);
        if (state === 'open') soon();
      },
    });
    return () => (stop(), clearTimeout(timer));
  }, [reload]);

  const rendered = useRef(false);
  useEffect(() => {
    if (jobs.data && !rendered.current) {
      rendered.current = true;
      performance.mark('gridx:jobs-rendered');
    }
  }, [jobs.data]);

  return (
    <section>
      <div class="toolbar">
        <h2>Jobs</h2>
        <label>
          Status{' '}
          <select value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)} aria-label="filter by status">
            <option value="">all</option>
            {JOB_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <span class={`live live-${stream}`} title="updates from the node's event stream">
          {stream === 'open' ? 'live' : stream === 'connecting' ? 'connecting…' : 'reconnecting…'}
        </span>
        <a class="button" href="#/submit">
          Submit a job
        </a>
      </div>
      {jobs.error && <ErrorState error={jobs.error} />}
      {!jobs.data && !jobs.error && <Loading />}
      {jobs.data && jobs.data.jobs.length === 0 && (
        <Empty>
          {status ? `No ${status} jobs.` : 'No jobs yet.'} <a href="#/submit">Submit one</a>, or from a shell:{' '}
          <code>gridx run --node {location.origin} alpine -- echo hi</code>
        </Empty>
      )}
      {jobs.data && jobs.data.jobs.length > 0 && (
        <Table label="jobs" head={['Job', 'Status', 'Image', 'Command', 'Submitted', 'Took', 'Ran on']}>
          {jobs.data.jobs.map((job) => (
            <tr key={job.id} data-job={job.id}>
              <td>
                <a href={`#/jobs/${encodeURIComponent(job.id)}`}>{job.title ?? <Id id={job.id} keep={12} />}</a>
              </td>
              <td>
                <Badge status={job.status} />
              </td>
              <td>
                <code>{job.image}</code>
              </td>
              <td class="command">
                <code>{shellJoin(job.command)}</code>
              </td>
              <td title={job.createdAt}>{ago(job.createdAt, now)}</td>
              <td>{job.durationMs !== undefined ? duration(job.durationMs) : '—'}</td>
              <td>{job.executedBy ? <Id id={job.executedBy} keep={10} /> : '—'}</td>
            </tr>
          ))}
        </Table>
      )}
      {jobs.data?.nextCursor && <p class="hint">Showing the newest {PAGE}; older jobs: GET /jobs?cursor={jobs.data.nextCursor}</p>}
    </section>
  );
}
