import { parseArgs } from 'node:util';
import { GridxError, messageOf, quote } from '../errors.js';
import { GridxClient, type JobRequestBody, type JobView, type LogEvent } from '../sdk/client.js';
import { findNodes } from '../sdk/mesh-client.js';
import { splitShellWords } from '../domain/shellwords.js';
import { type InputFlag, type SaveOutcome, checkInputFiles, parseInputFlags, saveOutputs, uploadInputs } from './files-command.js';
import { usageError } from './output.js';

export const RUN_USAGE = `usage: gridx run [--node URL | --mesh --bootstrap MULTIADDR] [options] IMAGE -- CMD [ARGS...]
       gridx run [--node URL] [options] IMAGE "CMD STRING"

Submits a job, prints its stdout and stderr live, and exits with the job's exit code
(124 timed out, 125 could not run, 130 cancelled).

options:
  --node URL        node to submit to (default $GRIDX_NODE or http://127.0.0.1:8000)
  --mesh            find an idle node that fits through the mesh instead (needs --bootstrap)
  --bootstrap MA    a peer's multiaddr to join the mesh through (repeatable; or $GRIDX_BOOTSTRAP)
  --pin             run only on the node the job is sent to, never forwarded
  --server URL      submit as a Parity task (POST /api/tasks) and follow its WebSocket stream
  --env K=V         set a variable (repeatable)
  --workdir DIR     working directory inside the container
  --cpus N          CPU cores, e.g. 0.5
  --memory SIZE     memory limit, e.g. 256m
  --timeout DUR     time limit, e.g. 30s or 5m
  --key KEY         account key (default $GRIDX_KEY); a server needs one, a reward is paid from it
  --reward N        credits paid to whoever runs the job, from the key's account
  --replicas K      run on K different workers; the majority result is accepted (and paid)
  --input LOCAL[:/inputs/NAME]
                    upload a local file and give it to the job, read-only, at /inputs/NAME
                    (default: the file's name); repeatable
  --output DIR      when the job ends (however it ends), download what it left under /outputs
                    into DIR, each file checked; exits 1 if that fails after a completed job
  --detach, -d      print the job id and exit without waiting`;

/** What one gridx run asks for, read from its arguments and environment (no I/O). */
export interface RunPlan {
  body: JobRequestBody;
  /** A node (--node), an idle node found through the mesh (--mesh), or a server as a Parity task (--server). */
  target: { kind: 'node'; url: string } | { kind: 'mesh'; bootstrap: string[] } | { kind: 'server'; url: string };
  key?: string;
  detach: boolean;
  /** Local files uploaded before the job is submitted, named in its inputs by digest. */
  inputs: InputFlag[];
  /** Where the job's outputs go once it ends. */
  outputDir?: string;
}

export async function runCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const plan = parseRunArgs(argv, env);
  if (plan === 'help') {
    console.log(RUN_USAGE);
    return 0;
  }
  const auth = plan.key ? { token: plan.key } : {};
  await checkInputFiles(plan.inputs);
  // The blobs go to the node that runs the job: with --mesh, to each candidate in turn.
  const prepare = async (client: GridxClient): Promise<JobRequestBody> =>
    plan.inputs.length === 0 ? plan.body : { ...plan.body, inputs: await uploadInputs(client, plan.inputs) };
  if (plan.target.kind === 'server') return runAsTask(new GridxClient(plan.target.url, auth), plan, prepare);

  const { client, submitted } =
    plan.target.kind === 'mesh'
      ? await submitThroughMesh(plan.body, plan.target.bootstrap, prepare)
      : await submitTo(new GridxClient(plan.target.url, auth), prepare);
  if (plan.detach) {
    console.log(submitted.id);
    return 0;
  }

  let cancelled = false;
  const onSigint = () => {
    if (cancelled) process.exit(130);
    cancelled = true;
    process.stderr.write(`\ngridx: cancelling job ${submitted.id} (Ctrl-C again to leave it running)\n`);
    client.cancel(submitted.id).catch(() => {});
  };
  process.on('SIGINT', onSigint);
  let job: JobView;
  try {
    job = await client.follow(submitted.id, (event: LogEvent) => {
      if ('stream' in event) (event.stream === 'stdout' ? process.stdout : process.stderr).write(event.data);
      // Why it waits, once and then on each change (the node sends it only when it changes).
      else if (event.event === 'waiting') process.stderr.write(`gridx: ${event.waiting.summary}\n`);
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
  const code = exitCodeOf(job);
  return plan.outputDir === undefined ? code : withOutputs(code, await saveOutputs(client, job.id, plan.outputDir, 'gridx'));
}

/** Reads gridx run's arguments; 'help' for --help. Usage errors throw (exit 2). */
export function parseRunArgs(argv: string[], env: NodeJS.ProcessEnv): RunPlan | 'help' {
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    options: {
      node: { type: 'string' },
      mesh: { type: 'boolean' },
      server: { type: 'string' },
      bootstrap: { type: 'string', multiple: true },
      pin: { type: 'boolean' },
      env: { type: 'string', multiple: true },
      workdir: { type: 'string' },
      cpus: { type: 'string' },
      memory: { type: 'string' },
      timeout: { type: 'string' },
      detach: { type: 'boolean', short: 'd' },
      key: { type: 'string' },
      reward: { type: 'string' },
      replicas: { type: 'string' },
      input: { type: 'string', multiple: true },
      output: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    tokens: true,
    strict: true,
  });
  if (values.help) return 'help';
  const terminator = tokens.find((t) => t.kind === 'option-terminator');
  const before = terminator
    ? tokens.filter((t) => t.kind === 'positional' && t.index < terminator.index).map((t) => (t as { value: string }).value)
    : positionals;
  const after = terminator
    ? tokens.filter((t) => t.kind === 'positional' && t.index > terminator.index).map((t) => (t as { value: string }).value)
    : [];
  const [image, ...rest] = before;
  if (!image) throw usageError('gridx run: missing IMAGE', RUN_USAGE);
  let command: string | string[];
  if (after.length > 0) {
    if (rest.length > 0) throw usageError(`gridx run: unexpected ${quote(rest[0])} before --`, RUN_USAGE);
    command = after;
  } else if (rest.length === 1) {
    command = rest[0]!;
  } else if (rest.length === 0) {
    throw usageError('gridx run: missing the command', RUN_USAGE);
  } else {
    throw usageError('gridx run: put the command after -- or quote it as one string', RUN_USAGE);
  }

  const body: JobRequestBody = { image, command };
  if (values.env) body.env = values.env;
  if (values.workdir) body.workdir = values.workdir;
  if (values.timeout) body.timeout = values.timeout;
  if (values.cpus || values.memory) {
    body.resources = {
      ...(values.cpus ? { cpus: Number(values.cpus) } : {}),
      ...(values.memory ? { memory: values.memory } : {}),
    };
  }

  if (values.pin) body.pin = true;
  if (values.reward) body.reward = values.reward;
  if (values.replicas) body.verification = { replicas: Number(values.replicas) };
  const detach = values.detach ?? false;
  if (detach && values.output !== undefined) {
    throw usageError(`gridx run: --output waits for the job to end, --detach does not; drop one (fetch later with gridx get JOB_ID -o DIR)`, RUN_USAGE);
  }
  if (values.output === '') throw usageError('gridx run: --output needs a directory', RUN_USAGE);
  const key = values.key ?? env.GRIDX_KEY;
  const target: RunPlan['target'] = values.server
    ? { kind: 'server', url: values.server }
    : values.mesh
      ? { kind: 'mesh', bootstrap: values.bootstrap ?? env.GRIDX_BOOTSTRAP?.split(',').filter(Boolean) ?? [] }
      : { kind: 'node', url: values.node ?? env.GRIDX_NODE ?? 'http://127.0.0.1:8000' };
  return {
    body,
    target,
    detach,
    inputs: parseInputFlags(values.input ?? [], RUN_USAGE),
    ...(key ? { key } : {}),
    ...(values.output === undefined ? {} : { outputDir: values.output }),
  };
}

/** The exit code once --output was tried: a completed job whose outputs were not saved is a failure. */
function withOutputs(code: number, saved: SaveOutcome): number {
  if (saved === 'interrupted') return 130;
  return saved === 'failed' && code === 0 ? 1 : code;
}

/** Submits as a Parity task (inputs under config.inputs) and follows it over the WebSocket event stream. */
async function runAsTask(client: GridxClient, plan: RunPlan, prepare: (client: GridxClient) => Promise<JobRequestBody>): Promise<number> {
  const body = await prepare(client);
  const command = typeof body.command === 'string' ? splitShellWords(body.command) : body.command;
  const env = Array.isArray(body.env) ? body.env : Object.entries(body.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const task = await client.submitTask({
    title: command.join(' ').slice(0, 200),
    type: 'docker',
    config: {
      command,
      resources: {
        ...(body.resources?.memory ? { memory: String(body.resources.memory) } : {}),
        ...(body.resources?.cpus ? { cpu: body.resources.cpus } : {}),
        ...(body.timeout ? { timeout: body.timeout } : {}),
      },
      ...(body.inputs ? { inputs: body.inputs } : {}),
    },
    environment: { type: 'docker', config: { image: body.image, ...(body.workdir ? { workdir: body.workdir } : {}), env } },
    ...(body.reward === undefined ? {} : { reward: body.reward }),
    ...(body.verification === undefined ? {} : { verification: body.verification }),
  });
  if (plan.detach) {
    console.log(task.id);
    return 0;
  }
  const end = await client.followTask(task.id, (event) => {
    if (event.type === 'output' && event.data) (event.stream === 'stderr' ? process.stderr : process.stdout).write(event.data);
  });
  const result = end.task?.result;
  const code = exitCodeOf({
    id: task.id,
    status: end.status ?? 'failed',
    ...(result?.exit_code == null ? {} : { exitCode: result.exit_code }),
    ...(result?.reason ? { reason: result.reason } : {}),
    ...(result?.message ? { message: result.message } : {}),
  }, 'task');
  return plan.outputDir === undefined ? code : withOutputs(code, await saveOutputs(client, task.id, plan.outputDir, 'parity'));
}

async function submitTo(
  client: GridxClient,
  prepare: (client: GridxClient) => Promise<JobRequestBody>,
): Promise<{ client: GridxClient; submitted: JobView }> {
  return { client, submitted: await client.submit(await prepare(client), { wait: false }) };
}

/** Tries the idle nodes that fit, best first, until one takes the job. */
async function submitThroughMesh(
  body: JobRequestBody,
  bootstrap: string[],
  prepare: (client: GridxClient) => Promise<JobRequestBody>,
): Promise<{ client: GridxClient; submitted: JobView }> {
  const offers = await findNodes(body, { bootstrap });
  const refusals: string[] = [];
  for (const offer of offers) {
    const client = new GridxClient(offer.apiUrl);
    try {
      const submitted = await client.submit(await prepare(client), { wait: false });
      process.stderr.write(`gridx: job ${submitted.id} on ${offer.peerId} (${offer.apiUrl})\n`);
      return { client, submitted };
    } catch (err) {
      // This node refused or is gone: the next one may take it.
      refusals.push(`${offer.apiUrl}: ${messageOf(err)}`);
    }
  }
  throw new GridxError('UNAVAILABLE', `every fitting node refused the job: ${refusals.join('; ')}`);
}

/** How a job or task ended, as far as the exit code goes. */
export interface Ended {
  id: string;
  status: string;
  exitCode?: number;
  reason?: string;
  message?: string;
  stdoutTruncated?: boolean;
  stderrTruncated?: boolean;
}

/** The CLI's exit code for a finished job or task; prints why on stderr when it did not complete. */
export function exitCodeOf(end: Ended, noun: 'job' | 'task' = 'job'): number {
  if (end.stdoutTruncated || end.stderrTruncated) {
    process.stderr.write(`gridx: output of ${noun} ${end.id} was truncated at the node's output limit\n`);
  }
  switch (end.status) {
    case 'completed':
      return 0;
    case 'timed_out':
      process.stderr.write(`gridx: ${noun} ${end.id} timed out: ${end.message ?? ''}\n`);
      return 124;
    case 'cancelled':
      process.stderr.write(`gridx: ${noun} ${end.id} was cancelled\n`);
      return 130;
    default:
      if (end.reason !== 'exit_code') process.stderr.write(`gridx: ${noun} ${end.id} failed: ${end.message ?? end.reason}\n`);
      return end.exitCode ?? 125;
  }
}
