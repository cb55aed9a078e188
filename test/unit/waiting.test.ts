import { describe, expect, it } from 'vitest';
import type { Job } from '../../src/domain/job.js';
import type { JobLimits } from '../../src/domain/offer.js';
import { WaitingExplainer } from '../../src/scheduler/waiting.js';
import type { RunnerSummary } from '../../src/store/store.js';
import { SPEC } from '../helpers/fixtures.js';

const GIB = 1024 ** 3;
const LIMITS: JobLimits = { cpus: 4, memoryBytes: 16 * GIB, timeoutMs: 3_600_000, gpus: 0, networks: ['none'] };
const NOW = Date.parse('2026-12-02T10:00:00Z');

function pending(overrides: Partial<Job> = {}): Job {
  return {
    id: 'j',
    status: 'pending',
    spec: { ...SPEC, resources: { cpus: 1, memoryBytes: 8 * GIB, gpus: 0 } },
    createdAt: new Date(NOW).toISOString(),
    updatedAt: new Date(NOW).toISOString(),
    attempts: 0,
    stdout: '',
    stderr: '',
    stdoutTruncated: false,
    stderrTruncated: false,
    pinned: false,
    ...overrides,
  };
}

function runner(overrides: Partial<RunnerSummary> = {}): RunnerSummary {
  const at = new Date(NOW - 1000).toISOString();
  return { id: 'runner-1', name: 'r', publicKey: 'k', slots: 2, running: 2, labels: {}, limits: LIMITS, version: 'v', tokenHash: 'h', registeredAt: at, lastHeartbeatAt: at, ...overrides };
}

describe('why a job waits', () => {
  const peer = (o: { free?: number; limits?: Partial<JobLimits>; suspended?: boolean; allowed?: boolean }) => ({
    limits: { ...LIMITS, ...o.limits },
    free: o.free ?? 1,
    suspended: o.suspended ?? false,
    allowed: o.allowed ?? true,
  });

  it('counts this node\'s slots, each peer and runner by why it does not take the job, and the backoff', async () => {
    const explainer = new WaitingExplainer({
      slots: () => ({ total: 2, used: 2 }),
      localLimits: () => LIMITS,
      peers: () => [peer({ free: 0 }), peer({ free: 0 }), peer({ limits: { memoryBytes: 4 * GIB } }), peer({ limits: { networks: [] } }), peer({ allowed: false }), peer({ suspended: true })],
      runners: async () => [runner(), runner({ running: 0, limits: { ...LIMITS, cpus: 0.5 } }), runner({ running: 0, lastHeartbeatAt: new Date(NOW - 60_000).toISOString() })],
      leaseTtlMs: 30_000,
      now: () => NOW,
    });
    const why = await explainer.explain(pending({ notBefore: NOW + 4000 }));
    expect(why).toEqual({
      summary:
        'waiting: 2 of 2 slots busy; 6 peers: 2 busy, 1 lacks 8g memory, 1 does not allow network none, 1 not allowed by mesh.forward_to, 1 refused a job lately; 2 runners: 1 busy, 1 lacks 1 CPU; retried in 4s (backoff after a lost attempt)',
      slots: { total: 2, busy: 2 },
      peers: { considered: 6, reasons: { busy: 2, 'lacks 8g memory': 1, 'does not allow network none': 1, 'not allowed by mesh.forward_to': 1, 'refused a job lately': 1 } },
      runners: { considered: 2, reasons: { busy: 1, 'lacks 1 CPU': 1 } },
      retryAt: new Date(NOW + 4000).toISOString(),
    });
  });

  it('says when the job does not fit here, when the node runs nothing itself, and when a pinned job ignores peers', async () => {
    const deps = { localLimits: () => ({ ...LIMITS, memoryBytes: GIB }), runners: async () => [], leaseTtlMs: 30_000, now: () => NOW, peers: () => [] };
    expect((await new WaitingExplainer({ ...deps, slots: () => ({ total: 1, used: 0 }) }).explain(pending()))?.summary).toBe(
      'waiting: does not fit this node: it lacks 8g memory; no peers',
    );
    expect((await new WaitingExplainer({ ...deps, slots: () => ({ total: 0, used: 0 }) }).explain(pending()))?.summary).toBe(
      'waiting: this node runs no jobs itself (0 slots); no peers',
    );
    expect((await new WaitingExplainer({ ...deps, localLimits: () => LIMITS, slots: () => ({ total: 1, used: 1 }) }).explain(pending({ pinned: true })))?.summary).toBe(
      'waiting: 1 of 1 slots busy; pinned to this node: peers and runners are not considered',
    );
    expect(await new WaitingExplainer({ ...deps, slots: () => ({ total: 1, used: 1 }) }).explain(pending({ status: 'running' }))).toBeUndefined();
  });
});
