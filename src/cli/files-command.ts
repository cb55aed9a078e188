/** Files in and out of jobs: gridx run's --input and --output, gridx get, gridx blob put|get. */

import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { INPUTS_DIR, checkInputPath, isDigest } from '../domain/data.js';
import { GridxError, isGridxError, messageOf, quote } from '../errors.js';
import type { Dialect, GridxClient, InputBody, OutputsView } from '../sdk/client.js';
import { clientFor } from './info-commands.js';
import { errorLine, progressLine, sizeText, usageError } from './output.js';

/** One --input: a local file and the path the job sees it at. */
export interface InputFlag {
  local: string;
  path: string;
}

/**
 * --input values, LOCAL[:/inputs/NAME]: the job's path defaults to the file's name under
 * /inputs. The last ":/" splits, so a local path may hold colons.
 */
export function parseInputFlags(values: readonly string[], hint: string): InputFlag[] {
  const seen = new Set<string>();
  return values.map((value) => {
    const at = value.lastIndexOf(':/');
    const local = at >= 0 ? value.slice(0, at) : value;
    if (local === '') throw usageError(`gridx run: --input ${quote(value)} names no local file; use LOCAL[:/inputs/NAME]`, hint);
    const target = at >= 0 ? value.slice(at + 1) : `${INPUTS_DIR}/${path.basename(local)}`;
    let checked: string;
    try {
      checked = checkInputPath(target, '--input');
    } catch {
      throw usageError(
        `gridx run: --input ${quote(value)}: the job's path must be under ${INPUTS_DIR} without "..", "." or empty parts; use LOCAL:${INPUTS_DIR}/NAME`,
        hint,
      );
    }
    if (seen.has(checked)) throw usageError(`gridx run: two --input files at ${checked}; name one of them with LOCAL:${INPUTS_DIR}/NAME`, hint);
    seen.add(checked);
    return { local, path: checked };
  });
}

/** Fails before anything is sent when an --input file cannot be read (with --mesh it would look like every node refused). */
export async function checkInputFiles(flags: readonly InputFlag[]): Promise<void> {
  for (const flag of flags) {
    let problem: string | undefined;
    try {
      const s = await stat(flag.local);
      if (!s.isFile()) problem = 'not a regular file (pack a directory with tar first)';
      else await access(flag.local, constants.R_OK);
    } catch (err) {
      problem = (err as NodeJS.ErrnoException).code ?? messageOf(err);
    }
    if (problem !== undefined) throw new GridxError('INVALID_INPUT', `--input ${quote(flag.local)}: cannot read it: ${problem}`);
  }
}

/** Uploads each --input file to the node as a blob; the job names them by digest. */
export async function uploadInputs(client: GridxClient, flags: readonly InputFlag[]): Promise<InputBody[]> {
  const inputs: InputBody[] = [];
  for (const flag of flags) {
    const progress = progressLine(`gridx: uploading ${path.basename(flag.local)}`);
    try {
      const ref = await client.putBlob(flag.local, { onProgress: progress.update });
      inputs.push({ path: flag.path, digest: ref.digest });
    } finally {
      progress.end();
    }
  }
  return inputs;
}

/** "3 files, 1.2 MiB, root sha256:… in DIR", and whether /outputs ran out of room. */
export function outputsSummary(manifest: OutputsView, dir: string): string {
  const n = manifest.files.length;
  const exceeded = manifest.exceeded ? ' (the job ran out of room under /outputs: only what fitted was kept)' : '';
  return `${n} ${n === 1 ? 'file' : 'files'}, ${sizeText(manifest.bytes)}, root ${manifest.root} in ${dir}${exceeded}`;
}

export type SaveOutcome = 'saved' | 'none' | 'failed' | 'interrupted';

/**
 * After gridx run: the ended job's outputs into `dir`, with one summary line on stderr (stdout
 * is the job's). A job that left none says so; Ctrl-C stops the download and keeps no part files.
 */
export async function saveOutputs(client: GridxClient, id: string, dir: string, dialect: Dialect): Promise<SaveOutcome> {
  const noun = dialect === 'parity' ? 'task' : 'job';
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const progress = progressLine(`gridx: downloading outputs of ${noun} ${id}`);
  try {
    const manifest = await client.downloadOutputs(id, dir, { dialect, onProgress: progress.update, signal: controller.signal });
    progress.end();
    process.stderr.write(`gridx: outputs of ${noun} ${id}: ${outputsSummary(manifest, dir)}\n`);
    return 'saved';
  } catch (err) {
    progress.end();
    if (controller.signal.aborted) {
      process.stderr.write(`gridx: download of the outputs stopped; fetch them later with gridx get ${id} -o ${dir}\n`);
      return 'interrupted';
    }
    if (isGridxError(err, 'NOT_FOUND')) {
      process.stderr.write(`gridx: no outputs to save: ${messageOf(err)}\n`);
      return 'none';
    }
    process.stderr.write(`${errorLine(err)}\ngridx: the outputs were not saved; try again with gridx get ${id} -o ${dir}\n`);
    return 'failed';
  } finally {
    process.off('SIGINT', onSigint);
  }
}

const transferOptions = { node: { type: 'string' }, key: { type: 'string' }, output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } } as const;

export const GET_USAGE = `usage: gridx get JOB_ID [-o DIR] [--node URL] [--key KEY]

Downloads what a job left under /outputs into DIR (default ./JOB_ID-outputs), each file
checked against the job's manifest, and prints the number of files, their size and the
manifest's root digest. The job must have ended.

options:
  -o, --output DIR  where to put the files (created; subdirectories as in /outputs)
  --node URL        node that ran the job (default $GRIDX_NODE or http://127.0.0.1:8000)
  --key KEY         account key (default $GRIDX_KEY), for a job of that account`;

export async function getCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: transferOptions, allowPositionals: true, strict: true });
  if (values.help) {
    console.log(GET_USAGE);
    return 0;
  }
  const [id, ...extra] = positionals;
  if (!id) throw usageError('gridx get: missing JOB_ID', GET_USAGE);
  if (extra.length > 0) throw usageError(`gridx get: unexpected ${quote(extra[0])}`, GET_USAGE);
  const dir = values.output ?? `${id}-outputs`;
  const progress = progressLine(`gridx: downloading outputs of job ${id}`);
  try {
    const manifest = await clientFor(values, env).downloadOutputs(id, dir, { onProgress: progress.update });
    progress.end();
    console.log(outputsSummary(manifest, dir));
    return 0;
  } finally {
    progress.end();
  }
}

export const BLOB_USAGE = `usage: gridx blob put FILE [--node URL] [--key KEY]
       gridx blob get DIGEST [-o FILE] [--node URL] [--key KEY]

put uploads a file to the node's blob store, streamed and checked by its sha256, and prints
{"digest", "size"}: a job names it as an input by that digest.
get downloads a blob into FILE (default ./HEX, the digest's hex part), checked as it is written.

options:
  -o, --output FILE  where get writes the blob
  --node URL         node to talk to (default $GRIDX_NODE or http://127.0.0.1:8000)
  --key KEY          account key (default $GRIDX_KEY): the blob is that account's to use`;

export async function blobCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: transferOptions, allowPositionals: true, strict: true });
  if (values.help) {
    console.log(BLOB_USAGE);
    return 0;
  }
  const [action, target, ...extra] = positionals;
  if (action !== 'put' && action !== 'get') {
    throw usageError(action === undefined ? 'gridx blob: missing put or get' : `gridx blob: unknown action ${quote(action)}; use put or get`, BLOB_USAGE);
  }
  if (!target) throw usageError(`gridx blob ${action}: missing ${action === 'put' ? 'FILE' : 'DIGEST'}`, BLOB_USAGE);
  if (extra.length > 0) throw usageError(`gridx blob ${action}: unexpected ${quote(extra[0])}`, BLOB_USAGE);
  const client = clientFor(values, env);
  if (action === 'put') {
    if (values.output !== undefined) throw usageError('gridx blob put: -o is for get', BLOB_USAGE);
    const progress = progressLine(`gridx: uploading ${path.basename(target)}`);
    try {
      const ref = await client.putBlob(target, { onProgress: progress.update });
      progress.end();
      console.log(JSON.stringify(ref));
    } finally {
      progress.end();
    }
    return 0;
  }
  if (!isDigest(target)) throw usageError(`gridx blob get: ${quote(target)} is not a digest ("sha256:" and 64 lowercase hex digits)`, BLOB_USAGE);
  const file = values.output ?? target.slice('sha256:'.length);
  const progress = progressLine(`gridx: downloading ${target.slice(0, 19)}…`);
  try {
    const ref = await client.getBlob(target, file, { onProgress: progress.update });
    progress.end();
    console.log(`${ref.digest} (${sizeText(ref.size)}) saved in ${file}`);
  } finally {
    progress.end();
  }
  return 0;
}
