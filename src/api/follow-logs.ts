/**
 * A live NDJSON stream of a job's output (GET /jobs/:id/logs?follow=true):
 * `{"stream":"stdout","data":"..."}` lines as the job prints, then `{"event":"end", ...job}`
 * when it is terminal; while it is pending, `{"event":"waiting","waiting":{...}}` each time
 * why it waits changes. Output already printed comes first, so a follower that joins late
 * misses nothing.
 */

import { PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import { type Job, isTerminal } from '../domain/job.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { WaitingExplainer } from '../scheduler/waiting.js';
import type { JobStore } from '../store/store.js';
import type { LogEvent } from '../wire/gridx.js';
import { logEndView } from './views/events.js';

export interface FollowLogsDeps {
  scheduler: Pick<Scheduler, 'liveOutput'>;
  events: Pick<TypedEmitter<JobEventMap>, 'on'>;
  store: Pick<JobStore, 'get'>;
  /** Aborts when the node begins to shut down: the stream ends then. */
  shutdown: AbortSignal;
  /** Why a pending job waits: sent while it waits, each time the reason changes. */
  waiting?: Pick<WaitingExplainer, 'explain'>;
}

/** How often a waiting job's reason is looked at again. */
const WAITING_EVERY_MS = 1000;

export function followLogs(deps: FollowLogsDeps, initial: Job, reply: FastifyReply): PassThrough {
  const { scheduler, events, store } = deps;
  const out = new PassThrough();
  const sent = { stdout: 0, stderr: 0 };
  let ended = false;
  const send = (line: LogEvent) => {
    if (!ended) out.write(`${JSON.stringify(line)}\n`);
  };
  const sendData = (stream: 'stdout' | 'stderr', data: string) => {
    if (data === '') return;
    sent[stream] += data.length;
    send({ stream, data });
  };
  const offs: Array<() => void> = [];
  const finish = (job: Job) => {
    if (ended) return;
    // Whatever the live stream did not carry (a follower that raced the end) comes from the record.
    sendData('stdout', job.stdout.slice(sent.stdout));
    sendData('stderr', job.stderr.slice(sent.stderr));
    send(logEndView(job));
    ended = true;
    offs.forEach((off) => off());
    out.end();
  };

  if (isTerminal(initial.status)) {
    finish(initial);
    return out;
  }
  // Subscribe and snapshot in the same tick: no chunk can fall between them.
  offs.push(
    events.on('job:output', (e) => {
      if (e.jobId === initial.id) sendData(e.stream, e.data);
    }),
    events.on('job:status', ({ job }) => {
      if (job.id !== initial.id) return;
      if (isTerminal(job.status)) finish(job);
      else send({ event: 'status', status: job.status });
    }),
  );
  const live = scheduler.liveOutput(initial.id);
  if (live) {
    sendData('stdout', live.stdout);
    sendData('stderr', live.stderr);
  }
  const stop = () => {
    ended = true;
    offs.forEach((off) => off());
  };
  if (deps.waiting && initial.status === 'pending') {
    const waiting = deps.waiting;
    // Sent when what it is made of changes: the countdown in the summary alone is no change.
    let said = '';
    let placed = false;
    const look = async () => {
      const job = await store.get(initial.id);
      const why = job && (await waiting.explain(job));
      if (!why || placed) return;
      const key = JSON.stringify({ ...why, summary: undefined });
      if (key !== said) send({ event: 'waiting', waiting: why });
      said = key;
    };
    let looking = false;
    const timer = setInterval(() => {
      if (looking || ended) return;
      looking = true;
      void look().catch(() => {}).finally(() => (looking = false));
    }, WAITING_EVERY_MS);
    const stopLooking = () => {
      placed = true;
      clearInterval(timer);
    };
    offs.push(
      stopLooking,
      // Once it leaves the queue it waits no more: no more looks, and none still under way is sent.
      events.on('job:status', ({ job }) => {
        if (job.id === initial.id && job.status !== 'pending') stopLooking();
      }),
    );
    void look().catch(() => {});
  }
  reply.raw.once('close', stop);
  const onShutdown = () => {
    send({ event: 'error', error: 'the node is shutting down; the job is kept and resumes when it restarts' });
    stop();
    out.end();
  };
  deps.shutdown.addEventListener('abort', onShutdown, { once: true });
  offs.push(() => deps.shutdown.removeEventListener('abort', onShutdown));
  // The job may have ended between the first read and the subscription.
  void store.get(initial.id).then((job) => {
    if (job && isTerminal(job.status)) finish(job);
  });
  return out;
}
