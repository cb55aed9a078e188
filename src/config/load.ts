import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { GridxError, messageOf, quote } from '../errors.js';
import { settingsInFile } from './file-keys.js';
import { type Config, type Overrides, SETTINGS, type Setting, type SettingName } from './schema.js';

export interface LoadConfigOptions {
  /** YAML config file; absent means defaults + env + flags. */
  file?: string;
  /** The environment to read GRIDX_* from; pass process.env from the entry point. */
  env?: Record<string, string | undefined>;
  /** Command-line flags, already mapped to setting names. */
  flags?: Overrides;
  /** Defaults of a role that differ from the schema's (gridx server: API on 8080). */
  defaults?: Overrides;
}

/** Every key a config file may hold: each setting's key and its aliases. */
const KNOWN_KEYS = Object.values(SETTINGS as Record<string, Setting<unknown>>).flatMap((s) => [s.key, ...(s.aliases ?? [])]);

/** Resolves defaults → file → env → flags into one frozen Config. */
export function loadConfig(options: LoadConfigOptions = {}): Readonly<Config> {
  const file = options.file === undefined ? new Map<string, unknown>() : settingsInFile(readYaml(options.file), KNOWN_KEYS, options.file);
  const env = options.env ?? {};
  const flags = options.flags ?? {};

  const values = {} as { [K in SettingName]: unknown };
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const setting = SETTINGS[name] as Setting<unknown>;
    const roleDefault = options.defaults?.[name];
    const withDefault = roleDefault === undefined ? setting : { ...setting, default: () => setting.parse(roleDefault) };
    values[name] = resolve(name, withDefault, file, env, flags, options.file);
  }
  const v = values as { [K in SettingName]: ReturnType<(typeof SETTINGS)[K]['default']> };
  const allowedNetworks = v.allowedNetworks.includes('none') ? v.allowedNetworks : ['none', ...v.allowedNetworks];
  const config: Config = {
    host: v.host,
    apiPort: v.apiPort,
    dataDir: path.resolve(v.dataDir.replace(/^~(?=$|\/)/, os.homedir())),
    slots: v.slots,
    bodyLimitBytes: v.bodyLimitBytes,
    maxAttempts: v.maxAttempts,
    leaseTtlMs: v.leaseTtlMs,
    retryBackoffMs: v.retryBackoffMs,
    eventRetentionMs: v.eventRetentionMs,
    dockerSocket: v.dockerSocket,
    ...(v.db === undefined ? {} : { db: v.db }),
    sandbox: {
      memoryBytes: v.memoryBytes,
      cpus: v.cpus,
      timeoutMs: v.timeoutMs,
      pidsLimit: v.pidsLimit,
      tmpfsBytes: v.tmpfsBytes,
      outputLimitBytes: v.outputLimitBytes,
      outputsBytes: v.outputsBytes,
      user: v.user,
      allowedNetworks,
      allowedVolumes: v.allowedVolumes,
      writableVolumes: v.writableVolumes,
      pullTimeoutMs: v.pullTimeoutMs,
      allowImages: v.allowImages,
      denyImages: v.denyImages,
      registries: v.registries,
      ...(v.maxGpus === undefined ? {} : { maxGpus: v.maxGpus }),
    },
    mesh: {
      enabled: v.meshEnabled,
      p2pPort: v.p2pPort,
      ...(v.p2pHost === undefined ? {} : { p2pHost: v.p2pHost }),
      bootstrap: v.bootstrap,
      price: v.price,
      offerTtlMs: v.offerTtlMs,
      ...(v.announceApiUrl === undefined ? {} : { announceApiUrl: v.announceApiUrl }),
      connectionsPerIp: v.connectionsPerIp,
      peerStreamsPerSecond: v.peerStreamsPerSecond,
      banMs: v.banMs,
      relay: v.relay,
      relayReservations: v.relayReservations,
      relayDataBytes: v.relayDataBytes,
      relayTimeMs: v.relayTimeMs,
      // A node that requires keys runs nobody's forwarded jobs until the operator says whose.
      accept: v.meshAccept ?? (v.auth === 'open' ? 'any' : 'none'),
      // Nor does it hand its users' jobs (and their secrets) to peers nobody vouched for.
      forwardTo: v.meshForwardTo ?? (v.auth === 'open' ? 'any' : 'none'),
    },
    auth: v.auth,
    feeBasisPoints: v.fee,
    settlement: {
      enabled: v.settlement,
      ...(v.rpcUrl === undefined ? {} : { rpcUrl: v.rpcUrl }),
      ...(v.token === undefined ? {} : { token: v.token }),
      ...(v.treasuryKey === undefined ? {} : { treasuryKey: v.treasuryKey }),
      confirmations: v.confirmations,
      pollIntervalMs: v.settlementPoll,
      startBlock: v.startBlock,
    },
    inputs: { allowPrivateUrls: v.allowPrivateUrls, urlTimeoutMs: v.urlTimeoutMs },
    storage: { maxBlobBytes: v.maxBlobBytes, maxBytes: v.storeBytes },
    api: { corsOrigins: v.corsOrigins, allowedHosts: v.allowedHosts, rateLimitPerMinute: v.rateLimit },
    limits: {
      maxQueued: v.maxQueued,
      accountQueued: v.accountQueued,
      accountRunning: v.accountRunning,
      anonymousQueued: v.anonymousQueued,
      anonymousRunning: v.anonymousRunning,
      eventStreams: v.eventStreams,
    },
  };
  if (config.settlement.enabled) {
    const missing = (['rpcUrl', 'token', 'treasuryKey'] as const).filter((k) => config.settlement[k] === undefined);
    if (missing.length > 0) {
      const names = { rpcUrl: 'settlement.rpc_url (GRIDX_RPC_URL)', token: 'settlement.token (GRIDX_TOKEN_ADDRESS)', treasuryKey: 'settlement.treasury_key (GRIDX_TREASURY_KEY)' };
      throw new GridxError('CONFIG_INVALID', `settlement is enabled but ${missing.map((k) => names[k]).join(', ')} ${missing.length > 1 ? 'are' : 'is'} not set`);
    }
  }
  return deepFreeze(config);
}

function resolve(
  name: SettingName,
  setting: Setting<unknown>,
  file: ReadonlyMap<string, unknown>,
  env: Record<string, string | undefined>,
  flags: Overrides,
  fileName: string | undefined,
): unknown {
  const sources: Array<{ raw: unknown; where: string }> = [];
  for (const key of [setting.key, ...(setting.aliases ?? [])]) {
    const raw = file.get(key);
    if (file.has(key)) sources.push({ raw, where: `${key} in ${fileName}` });
  }
  if (env[setting.env] !== undefined) sources.push({ raw: env[setting.env], where: `env ${setting.env}` });
  if (flags[name] !== undefined) sources.push({ raw: flags[name], where: `flag for ${setting.key}` });

  const last = sources.at(-1);
  if (last === undefined) return setting.default();
  const value = setting.parse(last.raw);
  if (value === undefined) {
    throw new GridxError(
      'CONFIG_INVALID',
      `${last.where}: expected ${setting.expect}, got ${setting.secret ? 'something else (a secret: not shown)' : quote(last.raw)}`,
    );
  }
  return value;
}

function readYaml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new GridxError('CONFIG_INVALID', `cannot read config file ${file}: ${messageOf(err)}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(text);
  } catch (err) {
    throw new GridxError('CONFIG_INVALID', `config file ${file} is not valid YAML: ${messageOf(err)}`, {
      cause: err,
    });
  }
  if (parsed == null) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new GridxError('CONFIG_INVALID', `config file ${file} must hold a YAML mapping at the top level`);
  }
  return parsed as Record<string, unknown>;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
