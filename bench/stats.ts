/**
 * Small helpers shared by the single-node and mesh benchmarks: order flipping, medians,
 * and printing rounds so that every figure is a ratio of sides measured in the same round.
 */

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/**
 * The sides in the order of step `i`: as given on even steps, reversed on odd ones, so over
 * any two steps each side runs once before and once after every other (ABBA…), and no side
 * always inherits the machine state another leaves behind.
 */
export function flipped<T>(sides: readonly T[], i: number): T[] {
  return i % 2 === 0 ? [...sides] : [...sides].reverse();
}

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Runs `fn` `n` times with at most `width` calls in flight. */
export async function pool(n: number, width: number, fn: () => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) {
        next++;
        await fn();
      }
    }),
  );
}

export const fmtMs = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(1)} ms`);

export function round(x: number, digits = 1): number {
  return Number(x.toFixed(digits));
}

/** "MET" or "MISSED", for a ratio against a target in the given direction. */
export function verdict(ratio: number, target: number, direction: 'at-most' | 'at-least'): string {
  const met = direction === 'at-most' ? ratio <= target : ratio >= target;
  return `target ${direction === 'at-most' ? '≤' : '≥'} ${target.toFixed(2)}: ${met ? 'MET' : 'MISSED'}`;
}
