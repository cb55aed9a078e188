import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { eventually } from '../helpers/docker.js';
import { type TestNode, startTestNode, tempDir } from '../helpers/node.js';
import { freePort } from '../helpers/process.js';

/** promtool's verdict on a metrics text (it reads stdin). */
function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
    );
    child.stdin!.end(text);
  });
}

describe('GET /metrics, scraped by a real Prometheus', () => {
  let t: TestNode;
  let prometheus: ChildProcess | undefined;
  let promUrl: string;
  const dir = tempDir('gridx-prometheus-');

  beforeAll(async () => {
    t = await startTestNode({ flags: { slots: 1 } });
    // A job in a real container, and one that fails: the job and engine metrics have values.
    expect((await t.client.submit({ image: LOCAL_IMAGE, command: 'echo metrics' })).status).toBe('completed');
    expect((await t.client.submit({ image: LOCAL_IMAGE, command: 'sh -c "exit 3"' })).status).toBe('failed');
  }, 60_000);

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((r) => prometheus!.once('exit', r));
      prometheus.kill('SIGTERM');
      await exited;
    }
    await t?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves the jobs, the engine, HTTP and the process in Prometheus text that promtool accepts', async () => {
    const res = await fetch(`${t.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toMatch(/^gridx_jobs_ended_total\{status="completed",reason=""\} 1$/m);
    expect(text).toMatch(/^gridx_jobs_ended_total\{status="failed",reason="exit_code"\} 1$/m);
    expect(text).toMatch(/^gridx_jobs\{status="completed"\} 1$/m);
    expect(text).toMatch(/^gridx_queue_depth 0$/m);
    expect(text).toMatch(/^gridx_job_wait_seconds_count 2$/m);
    expect(text).toMatch(/^gridx_job_duration_seconds_count\{status="completed"\} 1$/m);
    expect(text).toMatch(/^gridx_container_seconds_count\{phase="create"\} 2$/m);
    expect(text).toMatch(/^gridx_container_seconds_count\{phase="start"\} 2$/m);
    expect(text).toMatch(/^gridx_http_request_duration_seconds_count\{method="POST",route="\/job",status_code="200"\} 2$/m);
    expect(text).toMatch(/^gridx_runners\{state="online"\} 0$/m);
    expect(text).toMatch(/^gridx_process_resident_memory_bytes \d+/m);
    // A URL nobody routes is one label, whatever the caller made up.
    await fetch(`${t.url}/no/such/${'x'.repeat(20)}`);
    expect(await (await fetch(`${t.url}/metrics`)).text()).toMatch(/route="unmatched",status_code="404"\} 1$/m);

    const lint = await promtoolCheck(text);
    expect(lint.output).toBe('');
    expect(lint.code).toBe(0);
  });

  it('Prometheus scrapes the node and answers a query for a value it served', async () => {
    const port = await freePort();
    const config = path.join(dir, 'prometheus.yml');
    const target = new URL(t.url).host;
    fs.writeFileSync(config, `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: gridx\n    static_configs:\n      - targets: ['${target}']\n`);
    prometheus = spawn(
      'prometheus',
      [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: 'ignore' },
    );
    promUrl = `http://127.0.0.1:${port}`;
    const query = async (q: string) => {
      const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`).catch(() => undefined);
      if (!res?.ok) return [];
      return ((await res.json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }).data.result;
    };
    const completed = await eventually(() => query('gridx_jobs_ended_total{status="completed"}'), (r) => r.length > 0, 30_000);
    expect(completed[0]!.metric).toMatchObject({ job: 'gridx', instance: target, status: 'completed' });
    expect(completed[0]!.value[1]).toBe('1');
    const up = await query('up{job="gridx"}');
    expect(up[0]!.value[1]).toBe('1');
  }, 60_000);
});
