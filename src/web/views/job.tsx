/** One job: its spec, where it stands (and why it waits), its executions, its live log and its output files. */

import { useEffect, useRef, useState } from 'preact/hooks';
import { isTerminal, type JobStatus } from '../../domain/job.js';
import type { JobView, OutputsView, StrangerView } from '../../wire/gridx.js';
import { ApiError, call, download, followEvents, get, session, type StreamState } from '../api.js';
import { bytes, duration, shellJoin, time } from '../format.js';
import { type Chunk, keepNewest } from '../log.js';
import { usePoll } from '../hooks.js';
import { Badge, Empty, ErrorState, Fields, Id, Loading, Table } from '../parts.js';

export function JobPage({ id }: { id: string }) {
  const path = `/jobs/${encodeURIComponent(id)}`;
  const job = usePoll((signal) => get<JobView | StrangerView>(path, signal), 3_000, [id]);
  const view = job.data && 'image' in job.data ? job.data : undefined;
  // The stream says a change at once; the job is read again after it, and arrives later.
  const [streamed, setStreamed] = useState<JobStatus | undefined>();
  const status = streamed ?? job.data?.status;
  return (
    <section>
      <div class="toolbar">
        <h2>
          Job <Id id={id} />
        </h2>
        {status && <Badge status={status} />}
        {view && status && !isTerminal(status) && <CancelButton path={path} onDone={job.reload} />}
      </div>
      {job.error && <ErrorState error={job.error} />}
      {!job.data && !job.error && <Loading />}
      {job.data && !view && <Empty>This job belongs to another account: only its status is shown. Paste its owner's key on the Account page to see the rest.</Empty>}
      {view && (
        <>
          {view.waiting && (
            <p class="waiting" role="status">
              {view.waiting.summary}
            </p>
          )}
          {view.message && <p class={view.status === 'completed' ? 'hint' : 'error-line'}>{view.message}</p>}
          <Spec job={view} />
          <LiveLog id={id} job={view} onChange={(changed) => (setStreamed(changed), job.reload())} />
          {view.outputs && <Outputs id={id} />}
          <Executions job={view} />
        </>
      )}
    </section>
  );
}

function Spec({ job }: { job: JobView }) {
  const code = (text: string | undefined) => text && <code>{text}</code>;
  return (
    <Fields
      rows={[
        ['Title', job.title],
        ['Image', code(job.image)],
        ['Command', code(shellJoin(job.command))],
        ['Workdir', job.workdir],
        ['Resources', `${job.resources.cpus} CPU, ${job.resources.memory} memory${job.resources.gpus ? `, ${job.resources.gpus} GPU` : ''}`],
        ['Timeout', job.timeout],
        ['Network', job.network],
        ['Reward', job.reward],
        ['Submitted', time(job.createdAt)],
        ['Started', job.startedAt && time(job.startedAt)],
        ['Finished', job.finishedAt && time(job.finishedAt)],
        ['Took', job.durationMs !== undefined && duration(job.durationMs)],
        ['Exit code', job.exitCode?.toString()],
        ['Ran on', code(job.executedBy)],
        ['Attempts', String(job.attempts)],
        ['Replicas', job.replicas?.toString()],
      ]}
    />
  );
}

/**
 * The output as it is printed: the task's update stream from its start (so a page opened
 * mid-run gets the beginning too), closed when the job ends. A finished job's log is read
 * from the job itself.
 */
function LiveLog({ id, job, onChange }: { id: string; job: JobView; onChange: (status: JobStatus) => void }) {
  const [chunks, setChunks] = useState<Chunk[]>([]);
  const [stream, setStream] = useState<{ state: StreamState; detail?: string }>({ state: 'connecting' });
  const ended = isTerminal(job.status);
  const startedEnded = useRef(ended);
  const pre = useRef<HTMLPreElement>(null);
  const changed = useRef(onChange);
  changed.current = onChange;

  useEffect(() => {
    if (startedEnded.current) return;
    const stop = followEvents(`/api/tasks/${encodeURIComponent(id)}/events`, {
      onEvent: (event) => {
        if (event.type === 'output' && event.data) {
          const chunk = { stream: event.stream ?? 'stdout', text: event.data };
          setChunks((all) => keepNewest([...all, chunk]));
        } else if (event.status ?? event.task?.status) {
          const status = (event.status ?? event.task?.status) as JobStatus;
          if (isTerminal(status)) stop();
          changed.current(status);
        }
      },
      onState: (state, detail) => setStream(detail ? { state, detail } : { state }),
    });
    return stop;
  }, [id]);

  useEffect(() => {
    const el = pre.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 80) el.scrollTop = el.scrollHeight;
  }, [chunks]);

  const shown: Chunk[] = startedEnded.current
    ? [
        ...(job.stdout ? [{ stream: 'stdout' as const, text: job.stdout }] : []),
        ...(job.stderr ? [{ stream: 'stderr' as const, text: job.stderr }] : []),
      ]
    : chunks;
  return (
    <div class="log">
      <h3>
        Log{' '}
        {!startedEnded.current && !ended && (
          <span class={`live live-${stream.state}`}>{stream.state === 'open' ? 'following' : stream.state === 'connecting' ? 'connecting…' : 'reconnecting…'}</span>
        )}
      </h3>
      {stream.state === 'closed' && stream.detail && !ended && <p class="hint">{stream.detail}</p>}
      <pre ref={pre} aria-label="job log" aria-live="polite">
        {shown.length === 0 ? <span class="muted">{ended ? '(no output)' : '(nothing printed yet)'}</span> : shown.map((c, i) => <span key={i} class={c.stream}>{c.text}</span>)}
      </pre>
      {(job.stdoutTruncated || job.stderrTruncated) && <p class="hint">The node capped this output; the end was cut.</p>}
    </div>
  );
}

function Outputs({ id }: { id: string }) {
  const base = `/jobs/${encodeURIComponent(id)}/outputs`;
  const outputs = usePoll((signal) => get<OutputsView>(base, signal), 0, [id]);
  const [error, setError] = useState<ApiError | undefined>();
  if (outputs.error) return <ErrorState error={outputs.error} title="Output files" />;
  if (!outputs.data) return null;
  const keyed = session.key() !== undefined;
  return (
    <div>
      <h3>Output files</h3>
      {error && <ErrorState error={error} />}
      {outputs.data.files.length === 0 ? (
        <Empty>The job left nothing under /outputs.</Empty>
      ) : (
        <Table label="output files" head={['Path', 'Size', 'sha256']}>
          {outputs.data.files.map((f) => {
            const href = `${base}/${f.path.split('/').map(encodeURIComponent).join('/')}`;
            const save = (e: Event) => {
              if (!keyed) return;
              e.preventDefault();
              download(href, f.path).catch((err: unknown) => setError(err as ApiError));
            };
            return (
              <tr key={f.path}>
                <td>
                  <a href={href} download={f.path.split('/').pop()} onClick={save}>
                    {f.path}
                  </a>
                </td>
                <td>{bytes(f.size)}</td>
                <td>
                  <Id id={f.sha256} keep={12} />
                </td>
              </tr>
            );
          })}
        </Table>
      )}
      {outputs.data.exceeded && <p class="hint">The job ran out of room under /outputs; only the files that fitted are kept.</p>}
    </div>
  );
}

function Executions({ job }: { job: JobView }) {
  const executions = job.executions ?? [];
  if (executions.length === 0) return null;
  return (
    <div>
      <h3>Executions</h3>
      <Table label="executions" head={['Attempt', 'Ran on', 'Status', 'Started', 'Finished', 'Exit', 'Message']}>
        {executions.map((e) => (
          <tr key={e.id}>
            <td>{e.attempt}</td>
            <td>
              <Id id={e.nodeId} keep={12} />
            </td>
            <td>
              <Badge status={e.status} />
            </td>
            <td>{time(e.startedAt)}</td>
            <td>{time(e.finishedAt)}</td>
            <td>{e.exitCode ?? '—'}</td>
            <td>{e.message ?? ''}</td>
          </tr>
        ))}
      </Table>
    </div>
  );
}

function CancelButton({ path, onDone }: { path: string; onDone: () => void }) {
  const [error, setError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);
  const cancel = async () => {
    setBusy(true);
    try {
      await call('DELETE', path);
      onDone();
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class="danger" disabled={busy} onClick={cancel}>
        Cancel job
      </button>
      {error && <ErrorState error={error} title="Could not cancel" />}
    </>
  );
}
