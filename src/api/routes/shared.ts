/** Route pieces both dialects use: id params and the paged listing. */

import { type Job, JOB_STATUSES } from '../../domain/job.js';
import type { Account } from '../../store/ledger-store.js';
import type { JobPage, JobStore } from '../../store/store.js';

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
export function listPage(store: Pick<JobStore, 'list'>, query: ListQuery, viewer: Account | undefined): Promise<JobPage> {
  return store.list({
    viewer: viewer?.id ?? null,
    ...(query.status ? { status: query.status as Job['status'] } : {}),
    ...(query.limit ? { limit: query.limit } : {}),
    ...(query.cursor ? { cursor: query.cursor } : {}),
  });
}
