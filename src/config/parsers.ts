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

export const userSpec: Parser<string> = (raw) => {
  const value = typeof raw === 'number' ? String(raw) : raw;
  return typeof value === 'string' && /^\d+(:\d+)?$/.test(value) ? value : undefined;
};
