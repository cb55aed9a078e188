/** The Grid-X dialect: GET /status, POST /job, and the /jobs resource. */

import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { type Job, isTerminal } from '../../domain/job.js';
import type { Offer } from '../../domain/offer.js';
import { type SpecPolicy, normalizeSpec } from '../../domain/spec.js';
import { formatDuration, formatSize } from '../../domain/units.js';
import { GridxError, isGridxError } from '../../errors.js';
import type { ApiDeps } from '../app.js';
import { type ListQuery, idParams, listPage, listQuerySchema, submitPaid } from './shared.js';
import { canSee, mustOwn, optionalAccount, writerAccount } from '../auth.js';
import { normalizeReward } from '../../domain/task.js';
import { normalizeVerification } from '../../domain/verification.js';
import { jobView, strangerView } from '../views.js';

export function gridxRoutes(deps: ApiDeps) {
  const { store, scheduler } = deps;

  const mustGet = async (id: string): Promise<Job> => {
    const job = await store.get(id);
    if (!job) throw new GridxError('NOT_FOUND', `no job with id ${id} on this node; list jobs with GET /jobs`);
    return job;
  };

  return async function routes(app: FastifyInstance): Promise<void> {
    app.get('/status', async () => {
      const slots = scheduler.slots;
      const counts = await store.countByStatus();
      const policy = deps.policy();
      return {
        status: slots.free > 0 ? 'idle' : 'busy',
        nodeId: deps.node.id,
        peerId: deps.node.id,
        multiaddrs: deps.mesh?.multiaddrs ?? [],
        peers: deps.mesh?.book.size ?? 0,
        connections: deps.mesh?.connectedPeers ?? 0,
        version: deps.node.version,
        slots,
        queue: { pending: counts.pending, running: counts.running + counts.scheduled },
        resources: deps.monitor.snapshot(),
        limits: {
          cpus: policy.cpus,
          memory: formatSize(policy.memoryBytes),
          timeout: formatDuration(policy.timeoutMs),
          gpus: policy.maxGpus,
          networks: policy.allowedNetworks,
        },
      };
    });

    app.post<{ Querystring: { wait?: boolean } }>(
      '/job',
      { schema: { querystring: { type: 'object', properties: { wait: { type: 'boolean', default: true } } } } },
      async (request, reply) => {
        const account = await writerAccount(request, deps);
        const body = (request.body ?? {}) as { title?: unknown; pin?: unknown; reward?: unknown; verification?: unknown };
        if (body.pin !== undefined && typeof body.pin !== 'boolean') {
          throw new GridxError('INVALID_INPUT', 'pin: must be true (run only on this node) or false');
        }
        const pinned = body.pin === true;
        const spec = validateForMesh(request.body, deps, pinned);
        const title = typeof body.title === 'string' ? body.title.slice(0, 200) : undefined;
        const reward = normalizeReward(body.reward);
        const replicas = normalizeVerification(body.verification);
        const job = await submitPaid(deps, account, spec, {
          ...(title ? { title } : {}),
          pinned,
          ...(reward ? { reward } : {}),
          ...(replicas > 1 ? { replicas } : {}),
        });
        if (request.query.wait === false) return reply.code(202).send(jobView(job));
        const gone = abortOnClose(reply);
        try {
          return jobView(await scheduler.waitForTerminal(job.id, AbortSignal.any([gone.signal, deps.shutdown])));
        } catch (err) {
          if (!deps.shutdown.aborted) throw err;
          throw new GridxError(
            'UNAVAILABLE',
            `the node is shutting down; job ${job.id} is kept and runs when the node restarts (see GET /jobs/${job.id})`,
          );
        } finally {
          gone.dispose();
        }
      },
    );

    app.get('/peers', async () => {
      const mesh = deps.mesh;
      if (!mesh) return { peerId: deps.node.id, peers: [] };
      const connected = new Set(mesh.libp2p.getPeers().map(String));
      return {
        peerId: mesh.peerId,
        peers: mesh.book.offers().map((offer) => ({ peerId: offer.peerId, connected: connected.has(offer.peerId), offer })),
      };
    });

    app.get<{ Querystring: ListQuery }>('/jobs', { schema: listQuerySchema }, async (request) => {
      const viewer = await optionalAccount(request, deps);
      const page = await listPage(store, request.query, viewer);
      return { jobs: page.jobs.map((j) => jobView(j, { output: false })), nextCursor: page.nextCursor ?? null };
    });

    app.get<{ Params: { id: string } }>('/jobs/:id', { schema: { params: idParams } }, async (request) => {
      const job = await mustGet(request.params.id);
      if (!canSee(job, await optionalAccount(request, deps))) return strangerView(job);
      const live = scheduler.liveOutput(job.id);
      const shown = live ? { ...job, ...live } : job;
      return jobView(shown, { executions: await store.executions(job.id) });
    });

    app.delete<{ Params: { id: string } }>('/jobs/:id', { schema: { params: idParams } }, async (request) => {
      const account = await writerAccount(request, deps);
      mustOwn(await mustGet(request.params.id), account, 'cancel');
      return jobView(await scheduler.cancel(request.params.id));
    });

    app.get<{ Params: { id: string }; Querystring: { follow?: boolean } }>(
      '/jobs/:id/logs',
      {
        schema: {
          params: idParams,
          querystring: { type: 'object', properties: { follow: { type: 'boolean', default: false } } },
        },
      },
      async (request, reply) => {
        const job = await mustGet(request.params.id);
        const viewer = await optionalAccount(request, deps);
        mustOwn(job, viewer, 'read the logs of');
        if (!request.query.follow) {
          const out = scheduler.liveOutput(job.id) ?? job;
          return {
            id: job.id,
            status: job.status,
            stdout: out.stdout,
            stderr: out.stderr,
            stdoutTruncated: out.stdoutTruncated,
            stderrTruncated: out.stderrTruncated,
          };
        }
        deps.streams.acquire(request, viewer?.id, reply.raw);
        return reply.type('application/x-ndjson').send(followLogs(deps, job, reply));
      },
    );
  };
}

/**
 * A live NDJSON stream of a job's output: `{"stream":"stdout","data":"..."}` lines as the
 * job prints, then `{"event":"end", ...job}` when it is terminal. Output already printed
 * comes first, so a follower that joins late misses nothing.
 */
function followLogs(deps: ApiDeps, initial: Job, reply: FastifyReply): PassThrough {
  const { scheduler, events, store } = deps;
  const out = new PassThrough();
  const sent = { stdout: 0, stderr: 0 };
  let ended = false;
  const send = (line: object) => {
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
    send({ event: 'end', ...jobView(job, { output: false }) });
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

/** An AbortSignal that fires when the client goes away before the reply is sent. */
function abortOnClose(reply: FastifyReply): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) {
      controller.abort(new GridxError('UNAVAILABLE', 'client closed the connection'));
    }
  };
  reply.raw.once('close', onClose);
  return { signal: controller.signal, dispose: () => reply.raw.off('close', onClose) };
}

/**
 * The spec under this node's limits; past them, unless pinned, under the limits of any
 * peer whose offer allows it (the scheduler then forwards it there).
 */
function validateForMesh(body: unknown, deps: ApiDeps, pinned: boolean) {
  const local = deps.policy();
  try {
    return normalizeSpec(body, local);
  } catch (err) {
    if (!isGridxError(err, 'LIMIT_EXCEEDED') || pinned || !deps.mesh) throw err;
    for (const offer of deps.mesh.book.offers()) {
      try {
        return normalizeSpec(body, peerPolicy(offer, local));
      } catch {
        // this peer does not allow it either
      }
    }
    throw new GridxError('LIMIT_EXCEEDED', `${err.message}; no peer in the mesh allows it either`);
  }
}

function peerPolicy(offer: Offer, local: SpecPolicy): SpecPolicy {
  const l = offer.limits;
  return {
    ...local,
    cpus: l.cpus,
    memoryBytes: l.memoryBytes,
    timeoutMs: l.timeoutMs,
    maxGpus: l.gpus,
    allowedNetworks: l.networks,
    // Host paths name this machine's files; a job bound for a peer cannot mount them.
    allowedVolumes: [],
  };
}
