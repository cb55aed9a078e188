import { describe, expect, it } from 'vitest';
import { JOB_STATUSES, canTransition, isTerminal, outcomeOf } from '../../src/domain/job.js';
import { SPEC } from '../helpers/fixtures.js';

describe('job statuses', () => {
  it('terminal statuses lead nowhere; a lost execution may go back to pending', () => {
    for (const from of JOB_STATUSES.filter(isTerminal)) {
      for (const to of JOB_STATUSES) expect(canTransition(from, to), `${from} → ${to}`).toBe(false);
    }
    expect(canTransition('running', 'pending')).toBe(true);
    expect(canTransition('pending', 'running')).toBe(false);
    expect(canTransition('pending', 'scheduled')).toBe(true);
  });

  it('an OOM kill fails the job only when the job failed', () => {
    const base = { timedOut: false, cancelled: false, stdout: '', stderr: '', stdoutTruncated: false, stderrTruncated: false, startedAt: '', finishedAt: '', durationMs: 1 };
    expect(outcomeOf({ ...base, exitCode: 137, oomKilled: true }, SPEC)).toMatchObject({ status: 'failed', reason: 'oom' });
    expect(outcomeOf({ ...base, exitCode: 0, oomKilled: true }, SPEC)).toEqual({ status: 'completed' });
    expect(outcomeOf({ ...base, exitCode: 137, oomKilled: false, timedOut: true }, SPEC)).toMatchObject({ status: 'timed_out' });
  });
});
