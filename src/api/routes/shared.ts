/** Route pieces both dialects use: id params and the paged listing. */

import { randomUUID } from 'node:crypto';
import { type Job, type JobSpec, JOB_STATUSES } from '../../domain/job.js';
import { GridxError } from '../../errors.js';
import type { SubmitOptions } from '../../scheduler/scheduler.js';
import type { Account } from '../../store/ledger-store.js';
import type { JobPage, JobStore } from '../../store/store.js';
import type { ApiDeps } from '../app.js';

export const idParams = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 200 } },
  required: ['id'],
} as const;

export interface ListQuery {
  status?: string;
  limit?: number;
  cursor?: string;
}

export const listQuerySchema = {
  querystring: {
    type: 'object',
    properties: {
      status: { type: 'string', enum: [...JOB_STATUSES] },
      limit: { type: 'integer', minimum: 1, maximum: 500 },
      cursor: { type: 'string', pattern: '^[0-9]+$' },
    },
  },
} as const;

/** One page of the jobs `viewer` may list (its own and anonymous ones), newest first, as the query asks. */
export function listPage(store: JobStore, query: ListQuery, viewer: Account | undefined): Promise<JobPage> {
  return store.list({
    viewer: viewer?.id ?? null,
    ...(query.status ? { status: query.status as Job['status'] } : {}),
    ...(query.limit ? { limit: query.limit } : {}),
    ...(query.cursor ? { cursor: query.cursor } : {}),
  });
}

/**
 * Submits a job for `account`: its reward (per execution, times the replicas) moves into
 * escrow in the same transaction as the insert; 402 and nothing written when the balance
 * does not cover it. Anonymous jobs (an open node) cannot offer a reward. Past the caller's
 * queue limits, 429 and nothing written.
 */
export async function submitPaid(
  deps: Pick<ApiDeps, 'scheduler' | 'ledger' | 'admission'>,
  account: Account | undefined,
  spec: JobSpec,
  options: Omit<SubmitOptions, 'id' | 'owner' | 'escrow'>,
): Promise<Job> {
  const id = randomUUID();
  await deps.admission.admit(account?.id, options.replicas ?? 1);
  if (!account) {
    if (options.reward !== undefined && options.reward !== '0') {
      throw new GridxError('UNAUTHORIZED', 'a reward is paid from an account: send "Authorization: Bearer <key>" (gridx account create prints one)');
    }
    return deps.scheduler.submit(spec, { ...options, id });
  }
  const escrow = deps.ledger.escrowOf(id, account.id, options.reward, options.replicas ?? 1);
  return deps.scheduler.submit(spec, { ...options, id, owner: account.id, ...(escrow ? { escrow } : {}) });
}
