/** Readers of setting values (YAML, env or flags): each returns undefined for a value it cannot read. */

import { parseCpus, parseDuration, parseSize } from '../domain/units.js';

export type Parser<T> = (raw: unknown) => T | undefined;

export const str: Parser<string> = (raw) =>
  typeof raw === 'string' && raw.trim() !== '' ? raw.trim() : typeof raw === 'number' ? String(raw) : undefined;

export const int =
  (min: number, max: number): Parser<number> =>
  (raw) => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
    return Number.isInteger(n) && n >= min && n <= max ? n : undefined;
  };

export const size =
  (min: number): Parser<number> =>
  (raw) => {
    if (typeof raw !== 'string' && typeof raw !== 'number') return undefined;
    const bytes = parseSize(raw);
    return bytes !== undefined && bytes >= min ? bytes : undefined;
  };

export const duration: Parser<number> = (raw) => {
  if (typeof raw !== 'string' && typeof raw !== 'number') return undefined;
  const ms = parseDuration(raw);
  return ms !== undefined && ms > 0 ? ms : undefined;
};

/** A duration of at least `minMs`. */
export const durationAtLeast =
  (minMs: number): Parser<number> =>
  (raw) => {
    const ms = duration(raw);
    return ms !== undefined && ms >= minMs ? ms : undefined;
  };

export const cpus: Parser<number> = (raw) =>
  typeof raw === 'string' || typeof raw === 'number' ? parseCpus(raw) : undefined;

export const bool: Parser<boolean> = (raw) => {
  if (typeof raw === 'boolean') return raw;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  return undefined;
};

/** A YAML list or a comma-separated string. */
export const list: Parser<string[]> = (raw) => {
  if (Array.isArray(raw)) return raw.every((x) => typeof x === 'string') ? (raw as string[]) : undefined;
  if (typeof raw === 'string') return raw.split(',').map((s) => s.trim()).filter(Boolean);
  return undefined;
};

/** Largest uid or gid: 2^32 - 2 (2^32 - 1 is (uid_t) -1, "no id"). */
const MAX_ID = 4_294_967_294;

/**
 * A non-root `uid` or `uid:gid`, in decimal, normalized to "uid:gid". The checks are on the
 * numbers, not the text: "00:0", "0:5" and "5:0" are root in the kernel's eyes and refused.
 * A bare uid runs with gid = uid: our images have no /etc/passwd entry for it, and without
 * one Docker would run the job with gid 0.
 */
export const userSpec: Parser<string> = (raw) => {
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.trim() : undefined;
  const match = text === undefined ? null : /^(\d{1,20})(?::(\d{1,20}))?$/.exec(text);
  if (!match) return undefined;
  const uid = Number(match[1]);
  const gid = match[2] === undefined ? uid : Number(match[2]);
  const ok = (id: number) => id >= 1 && id <= MAX_ID;
  return ok(uid) && ok(gid) ? `${uid}:${gid}` : undefined;
};
