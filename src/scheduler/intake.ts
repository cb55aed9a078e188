/**
 * The queue's front door for both dialects of the API: which limits a new job is held to,
 * the caller's queue limits (Admission), and the reward moved into escrow in the same
 * transaction as the insert (Scheduler.submit). Routes parse and authorize; this decides.
 */

import { randomUUID } from 'node:crypto';
import type { Job, JobSpec } from '../domain/job.js';
import { type SpecPolicy, normalizeSpec } from '../domain/spec.js';
import { GridxError, isGridxError } from '../errors.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Account } from '../store/ledger-store.js';
import type { Admission } from './admission.js';
import type { Scheduler, SubmitOptions } from './scheduler.js';

export interface IntakeDeps {
  scheduler: Pick<Scheduler, 'submit'>;
  admission: Pick<Admission, 'admit'>;
  ledger: Pick<Ledger, 'escrowOf'>;
  /** This node's per-job limits. */
  policy: () => SpecPolicy;
  /**
   * The limits each peer of the mesh takes jobs under, from its offer, on top of `local`
   * (mesh/placement.ts: peerPolicies). Absent off the mesh.
   */
  peerPolicies?: (local: SpecPolicy) => SpecPolicy[];
}

/** What a submit may say besides the spec; the id, owner and escrow are the Intake's to set. */
export type IntakeOptions = Omit<SubmitOptions, 'id' | 'owner' | 'escrow'>;

export class Intake {
  constructor(private readonly deps: IntakeDeps) {}

  /** This node's per-job limits. */
  policy(): SpecPolicy {
    return this.deps.policy();
  }

  /**
   * The spec of a job request under this node's limits; past them, unless pinned, under
   * those of any peer whose offer allows it (the scheduler then forwards it there).
   */
  specOf(body: unknown, options: { pinned: boolean }): JobSpec {
    const local = this.deps.policy();
    try {
      return normalizeSpec(body, local);
    } catch (err) {
      if (!isGridxError(err, 'LIMIT_EXCEEDED') || options.pinned || !this.deps.peerPolicies) throw err;
      for (const policy of this.deps.peerPolicies(local)) {
        try {
          return normalizeSpec(body, policy);
        } catch {
          // this peer does not allow it either
        }
      }
      throw new GridxError('LIMIT_EXCEEDED', `${err.message}; no peer in the mesh allows it either`);
    }
  }

  /**
   * Submits a job for `account`: its reward (per execution, times the replicas) moves into
   * escrow in the same transaction as the insert; 402 and nothing written when the balance
   * does not cover it. Anonymous jobs (an open node) cannot offer a reward. Past the caller's
   * queue limits, 429 and nothing written.
   */
  async submit(account: Account | undefined, spec: JobSpec, options: IntakeOptions): Promise<Job> {
    const id = randomUUID();
    await this.deps.admission.admit(account?.id, options.replicas ?? 1);
    if (!account) {
      if (options.reward !== undefined && options.reward !== '0') {
        throw new GridxError('UNAUTHORIZED', 'a reward is paid from an account: send "Authorization: Bearer <key>" (gridx account create prints one)');
      }
      return this.deps.scheduler.submit(spec, { ...options, id });
    }
    const escrow = this.deps.ledger.escrowOf(id, account.id, options.reward, options.replicas ?? 1);
    return this.deps.scheduler.submit(spec, { ...options, id, owner: account.id, ...(escrow ? { escrow } : {}) });
  }
}
