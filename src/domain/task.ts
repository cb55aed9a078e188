/**
 * Parity's task body, mapped onto the canonical job spec. A Parity user's request works
 * unchanged; errors name the Parity field (config.command, environment.config.image, ...).
 */

import { GridxError, invalid, quote } from '../errors.js';
import { formatAmount, parseAmount } from './amount.js';
import { normalizeVerification } from './verification.js';
import type { JobSpec } from './job.js';
import { type NormalizedRequest, type SpecPolicy, normalizeRequest } from './spec.js';

export interface TaskRequest {
  spec: JobSpec;
  /** The bytes of inline inputs, by digest (see NormalizedRequest). */
  inline: Map<string, Buffer>;
  title: string;
  description?: string;
  /** Credits offered per execution, as a canonical decimal string. */
  reward?: string;
  /** Workers that each run the task (verification.replicas); 1 runs it once. */
  replicas: number;
}

/** Grid-X field → Parity field, for error messages. */
const FIELD_NAMES: Array<[RegExp, string]> = [
  [/^image\b/, 'environment.config.image'],
  [/^command\b/, 'config.command'],
  [/^env\b/, 'environment.config.env'],
  [/^workdir\b/, 'environment.config.workdir'],
  [/^resources\.cpus\b/, 'config.resources.cpu'],
  [/^resources\.memory\b/, 'config.resources.memory'],
  [/^resources\.gpus\b/, 'config.resources.gpus'],
  [/^resources\b/, 'config.resources'],
  [/^timeout\b/, 'config.resources.timeout'],
  [/^network\b/, 'config.network'],
  [/^inputs\b/, 'config.inputs'],
];

const MAX_TITLE = 200;
const MAX_DESCRIPTION = 4000;

export function normalizeTask(body: unknown, policy: SpecPolicy): TaskRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalid('body', 'must be a JSON object: a Parity task with title, type, config and environment');
  }
  const b = body as Record<string, unknown>;
  const title = text(b.title, 'title', MAX_TITLE, true)!;
  const description = text(b.description, 'description', MAX_DESCRIPTION, false);
  if (b.type !== undefined && b.type !== 'docker') throw invalid('type', `must be "docker", got ${quote(b.type)}`);
  const config = object(b.config, 'config', true)!;
  const environment = object(b.environment, 'environment', true)!;
  if (environment.type !== undefined && environment.type !== 'docker') {
    throw invalid('environment.type', `must be "docker", got ${quote(environment.type)}`);
  }
  const envConfig = object(environment.config, 'environment.config', true)!;
  const resources = object(config.resources, 'config.resources', false);

  const request: Record<string, unknown> = {
    image: envConfig.image,
    command: config.command,
    env: envConfig.env,
    workdir: envConfig.workdir,
    network: config.network,
    inputs: config.inputs,
  };
  if (resources) {
    const { cpu, memory, gpus, timeout, ...rest } = resources;
    const unknown = Object.keys(rest)[0];
    if (unknown !== undefined) throw invalid(`config.resources.${unknown}`, 'is not known; use memory, cpu, gpus or timeout');
    request.resources = { cpus: cpu, memory, gpus };
    request.timeout = timeout;
  }
  let normalized: NormalizedRequest;
  try {
    normalized = normalizeRequest(request, policy);
  } catch (err) {
    if (!(err instanceof GridxError)) throw err;
    const renamed = FIELD_NAMES.reduce((m, [re, parity]) => (re.test(m) ? m.replace(re, parity) : m), err.message);
    throw new GridxError(err.code, renamed, { cause: err });
  }
  const reward = normalizeReward(b.reward);
  return {
    ...normalized,
    title,
    replicas: normalizeVerification(b.verification),
    ...(description === undefined ? {} : { description }),
    ...(reward === undefined ? {} : { reward }),
  };
}

/** 100, "100", "0.25" → a canonical decimal string; at most 18 decimals, no exponent. */
export function normalizeReward(raw: unknown): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  return formatAmount(parseAmount(raw, 'reward', { allowZero: true }));
}

function text(raw: unknown, field: string, max: number, required: boolean): string | undefined {
  if (raw === undefined || raw === null) {
    if (required) throw invalid(field, 'is required: a short name for the task');
    return undefined;
  }
  if (typeof raw !== 'string') throw invalid(field, `must be a string, got ${typeof raw}`);
  const value = raw.trim();
  if (required && value === '') throw invalid(field, 'must not be empty');
  if (value.length > max) throw invalid(field, `is ${value.length} characters; at most ${max}`);
  return value;
}

function object(raw: unknown, field: string, required: boolean): Record<string, unknown> | undefined {
  if (raw === undefined || raw === null) {
    if (required) throw invalid(field, 'is required (see the Parity task format in the README)');
    return undefined;
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) throw invalid(field, 'must be an object');
  return raw as Record<string, unknown>;
}
