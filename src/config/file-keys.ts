/**
 * The settings a YAML config file holds, by dotted key. A file may nest its maps
 * (`runner: {docker: {pids_limit: 64}}`), write dotted keys (`runner.docker.pids_limit: 64`),
 * or mix the two. A key that is no setting is an error naming the closest one: a typo must
 * never leave a default in force in silence.
 */

import { GridxError, quote } from '../errors.js';

/**
 * Every setting in `tree` by its dotted key (`known`: all setting keys and aliases). A
 * setting's value is taken whole, whatever its shape: a map under a list setting is the
 * parser's to refuse, not a group of unknown keys.
 */
export function settingsInFile(tree: Record<string, unknown>, known: readonly string[], file: string): Map<string, unknown> {
  const leaves = new Set(known);
  const groups = groupsOf(known);
  const found = new Map<string, unknown>();

  const walk = (map: Record<string, unknown>, prefix: string): void => {
    for (const [key, raw] of Object.entries(map)) {
      const dotted = prefix === '' ? key : `${prefix}.${key}`;
      if (leaves.has(dotted)) {
        if (found.has(dotted)) {
          throw new GridxError('CONFIG_INVALID', `${dotted} is set twice in ${file} (nested and as a dotted key); keep one`);
        }
        found.set(dotted, raw);
      } else if (groups.has(dotted)) {
        if (isMap(raw)) walk(raw, dotted);
        else if (raw !== null) {
          // null is a section whose settings are all commented out.
          const example = known.find((k) => k.startsWith(`${dotted}.`));
          throw new GridxError(
            'CONFIG_INVALID',
            `${dotted} in ${file} is a group of settings such as ${example}, not a value; write it as a mapping, got ${quote(raw)}`,
          );
        }
      } else {
        throw unknownSetting(dotted, [...leaves, ...groups], file);
      }
    }
  };
  walk(tree, '');
  return found;
}

/** Every proper prefix of a setting key: `runner`, `runner.docker`, `runner.docker.images`. */
function groupsOf(keys: readonly string[]): Set<string> {
  const groups = new Set<string>();
  for (const key of keys) {
    const parts = key.split('.');
    for (let i = 1; i < parts.length; i++) groups.add(parts.slice(0, i).join('.'));
  }
  return groups;
}

function unknownSetting(dotted: string, candidates: readonly string[], file: string): GridxError {
  const shown = /^[\w.-]{1,200}$/.test(dotted) ? dotted : quote(dotted);
  const nearest = closest(dotted, candidates);
  const hint = nearest.close
    ? `did you mean ${nearest.key}?`
    : `no setting is spelled like it (the nearest is ${nearest.key}); every setting is listed in src/config/schema.ts`;
  return new GridxError('CONFIG_INVALID', `unknown setting ${shown} in ${file}; ${hint}`);
}

/**
 * The candidate nearest to `dotted` by edit distance, ignoring case and "-" for "_". A
 * key written at the wrong depth (`pids_limit` at the top) is near its full key, and a
 * key cut short (`runner.docker.memory`) is near the one it begins.
 */
function closest(dotted: string, candidates: readonly string[]): { key: string; close: boolean } {
  const wanted = dotted.toLowerCase().replaceAll('-', '_').slice(0, 100);
  const depth = wanted.split('.').length;
  const lastPart = wanted.split('.').at(-1) ?? wanted;
  let best = { key: candidates[0] ?? '', score: Infinity };
  for (const key of candidates) {
    const parts = key.split('.');
    const whole = distance(wanted, key);
    const tail = parts.length > depth ? distance(wanted, parts.slice(-depth).join('.')) + 1 : Infinity;
    const cutShort = parts.length === depth && lastPart.length >= 3 && key.startsWith(wanted) ? 1 : Infinity;
    const score = Math.min(whole, tail, cutShort);
    if (score < best.score) best = { key, score };
  }
  return { key: best.key, close: best.score <= Math.max(2, Math.floor(lastPart.length / 3)) };
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
