/**
 * The queue's front door for both dialects of the API: which limits a new job is held to,
 * the caller's queue limits (Admission), and the reward moved into escrow in the same
 * transaction as the insert (Scheduler.submit). Routes parse and authorize; this decides.
 */

import { randomUUID } from 'node:crypto';
import type { Job, JobSpec } from '../domain/job.js';
import { type NormalizedRequest, type SpecPolicy, normalizeRequest } from '../domain/spec.js';
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
  /** Where inline inputs are stored, and who may name which blob; absent: jobs take no inputs. */
  inputs?: InputBlobs;
}

/** The blob store as the Intake sees it. */
export interface InputBlobs {
  /** Stores `bytes` as a blob the account (none: anonymous) may use. */
  keep(bytes: Buffer, accountId: string | undefined): Promise<void>;
  /** Whether the account (none: anonymous) may name blob `digest` as an input. */
  mayUse(digest: string, accountId: string | undefined): Promise<boolean>;
}

/** What a submit may say besides the spec; the id, owner and escrow are the Intake's to set. */
export type IntakeOptions = Omit<SubmitOptions, 'id' | 'owner' | 'escrow'> & {
  /** The bytes of the spec's inline inputs, by digest (NormalizedRequest.inline). */
  inline?: ReadonlyMap<string, Buffer>;
};

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
  specOf(body: unknown, options: { pinned: boolean }): NormalizedRequest {
    const local = this.deps.policy();
    try {
      return normalizeRequest(body, local);
    } catch (err) {
      if (!isGridxError(err, 'LIMIT_EXCEEDED') || options.pinned || !this.deps.peerPolicies) throw err;
      for (const policy of this.deps.peerPolicies(local)) {
        try {
          return normalizeRequest(body, policy);
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
  async submit(account: Account | undefined, spec: JobSpec, intakeOptions: IntakeOptions): Promise<Job> {
    const { inline, ...options } = intakeOptions;
    const id = randomUUID();
    await this.deps.admission.admit(account?.id, options.replicas ?? 1);
    await this.placeInputs(account?.id, spec, inline);
    if (!account) {
      if (options.reward !== undefined && options.reward !== '0') {
        throw new GridxError('UNAUTHORIZED', 'a reward is paid from an account: send "Authorization: Bearer <key>" (gridx account create prints one)');
      }
      return this.deps.scheduler.submit(spec, { ...options, id });
    }
    const escrow = this.deps.ledger.escrowOf(id, account.id, options.reward, options.replicas ?? 1);
    return this.deps.scheduler.submit(spec, { ...options, id, owner: account.id, ...(escrow ? { escrow } : {}) });
  }

  /**
   * Inline inputs become blobs now; a blob named by digest must be one the caller may use
   * (uploaded by its account, or an output of its job), so a digest alone opens nothing.
   */
  private async placeInputs(accountId: string | undefined, spec: JobSpec, inline?: ReadonlyMap<string, Buffer>): Promise<void> {
    if (!spec.inputs?.length) return;
    const { inputs } = this.deps;
    if (!inputs) throw new GridxError('INVALID_INPUT', 'inputs: this node takes no input files');
    for (const [i, input] of spec.inputs.entries()) {
      if (!('digest' in input)) continue;
      const bytes = inline?.get(input.digest);
      if (bytes) await inputs.keep(bytes, accountId);
      else if (!(await inputs.mayUse(input.digest, accountId))) {
        throw new GridxError('INVALID_INPUT', `inputs[${i}].digest: no blob ${input.digest} that this caller uploaded; upload the file with POST /blobs first`);
      }
    }
  }
}
