/** Typed events with `noun:verb` names; a throwing listener never breaks the emitter. */

import type { FailureReason, Job } from './job.js';

export interface JobEventMap {
  /** A job changed status; `job` is the stored record after the change. */
  'job:status': { job: Job };
  /** An execution's container started (scheduled → running); emitted after its job:status. */
  'job:started': { job: Job; executionId: string };
  /** A job reached a terminal status; emitted after its job:status. */
  'job:ended': { job: Job };
  /**
   * An execution was lost (its lease expired, its holder stopped or gave it back) and the
   * job went back to the queue or failed for it; emitted after its job:status.
   */
  'job:lost': { job: Job; reason: FailureReason };
  /** A running job wrote output. */
  'job:output': { jobId: string; stream: 'stdout' | 'stderr'; data: string };
}

type Listener<T> = (payload: T) => void;

export class TypedEmitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  constructor(private readonly onListenerError: (event: string, err: unknown) => void = () => {}) {}

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => {
      set.delete(listener as Listener<never>);
    };
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(payload);
      } catch (err) {
        this.onListenerError(String(event), err);
      }
    }
  }
}
