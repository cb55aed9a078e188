/** A form that submits a job (POST /job) and opens its page; the node's refusal is shown as it says it. */

import { useState } from 'preact/hooks';
import type { JobRequestBody, JobView, NodeStatus } from '../../wire/gridx.js';
import { ApiError, call } from '../api.js';
import { ErrorState } from '../parts.js';

export function SubmitView({ status }: { status: NodeStatus | undefined }) {
  const [error, setError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.target as HTMLFormElement);
    const text = (name: string) => String(form.get(name) ?? '').trim();
    const env = text('env')
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean);
    const body: JobRequestBody = {
      image: text('image'),
      command: text('command'),
      ...(env.length ? { env } : {}),
      ...(text('title') ? { title: text('title') } : {}),
      ...(text('timeout') ? { timeout: text('timeout') } : {}),
      ...(text('network') && text('network') !== 'none' ? { network: text('network') } : {}),
      ...(text('reward') ? { reward: text('reward') } : {}),
    };
    const cpus = text('cpus');
    const memory = text('memory');
    if (cpus || memory) body.resources = { ...(cpus ? { cpus: Number(cpus) } : {}), ...(memory ? { memory } : {}) };
    setBusy(true);
    try {
      const job = await call<JobView>('POST', '/job?wait=false', body);
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };

  const limits = status?.limits;
  return (
    <section>
      <h2>Submit a job</h2>
      <form class="form" onSubmit={submit}>
        <label>
          Image
          <input name="image" required placeholder="alpine:latest" autocomplete="off" />
        </label>
        <label>
          Command
          <input name="command" required placeholder="echo hello" autocomplete="off" />
          <span class="hint">Split into words as a shell would; no shell runs unless you name one (sh -c '…').</span>
        </label>
        <label>
          Environment
          <textarea name="env" rows={2} placeholder="KEY=value, one per line" />
        </label>
        <div class="row">
          <label>
            CPUs
            <input name="cpus" inputMode="decimal" placeholder={limits ? `up to ${limits.cpus}` : '1'} />
          </label>
          <label>
            Memory
            <input name="memory" placeholder={limits ? `up to ${limits.memory}` : '512m'} />
          </label>
          <label>
            Timeout
            <input name="timeout" placeholder={limits ? `up to ${limits.timeout}` : '5m'} />
          </label>
        </div>
        <div class="row">
          <label>
            Network
            <select name="network">
              <option value="none">none</option>
              {(limits?.networks ?? [])
                .filter((n) => n !== 'none')
                .map((n) => (
                  <option key={n} value={n}>
                    {n}
                  </option>
                ))}
            </select>
          </label>
          <label>
            Title
            <input name="title" maxLength={200} autocomplete="off" />
          </label>
          <label>
            Reward
            <input name="reward" inputMode="decimal" placeholder="credits" />
          </label>
        </div>
        <button type="submit" disabled={busy}>
          {busy ? 'Submitting…' : 'Submit'}
        </button>
      </form>
      {error && <ErrorState error={error} title="The node refused the job" />}
    </section>
  );
}
