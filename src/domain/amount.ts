/**
 * Credit amounts. A credit is one token of the settlement ERC20, which has 18 decimals, so
 * amounts are kept exactly as integers of base units (bigint) and shown as decimal strings.
 * Floating point never touches money.
 */

import { invalid, quote } from '../errors.js';

export const DECIMALS = 18;
const UNIT = 10n ** BigInt(DECIMALS);
/** The most one amount may be: 30 whole digits (fits a uint256 with room to add). */
export const MAX_AMOUNT = 10n ** 30n * UNIT - 1n;

export interface AmountRules {
  /** Whether 0 is accepted (a task may offer no reward; a transfer must move something). */
  allowZero?: boolean;
}

/**
 * Reads 100, "100", "0.25" into base units. Refuses negatives, zero (unless allowed), more
 * than 18 decimals, exponents, and more than 30 whole digits, naming `field`.
 */
export function parseAmount(raw: unknown, field: string, rules: AmountRules = {}): bigint {
  let text: string;
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw)) throw invalid(field, `must be a finite number of credits, got ${raw}`);
    if (raw < 0) throw invalid(field, `must not be negative, got ${raw}`);
    if (raw >= 1e21) throw invalid(field, 'is too large to send as a JSON number; send it as a string such as "1000000000000000000000"');
    text = String(raw);
  } else if (typeof raw === 'string') {
    text = raw.trim();
  } else {
    throw invalid(field, 'must be a number or a decimal string of credits, such as 100 or "0.5"');
  }
  if (text.startsWith('-')) throw invalid(field, `must not be negative, got ${quote(raw)}`);
  const match = /^(\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) throw invalid(field, `must be a decimal number of credits such as 100 or "0.5", got ${quote(raw)}`);
  const whole = match[1]!;
  const fraction = match[2] ?? '';
  if (fraction.replace(/0+$/, '').length > DECIMALS) {
    throw invalid(field, `has more than ${DECIMALS} decimals (the token's precision), got ${quote(raw)}`);
  }
  if (whole.replace(/^0+/, '').length > 30) throw invalid(field, `is too large: at most 30 digits before the point, got ${quote(raw)}`);
  const units = BigInt(whole) * UNIT + BigInt(fraction.slice(0, DECIMALS).padEnd(DECIMALS, '0') || '0');
  if (units === 0n && !rules.allowZero) throw invalid(field, 'must be more than 0');
  return units;
}

/** Base units → "12.5" (no trailing zeros, no exponent). */
export function formatAmount(units: bigint): string {
  const sign = units < 0n ? '-' : '';
  const abs = units < 0n ? -units : units;
  const whole = abs / UNIT;
  const fraction = (abs % UNIT).toString().padStart(DECIMALS, '0').replace(/0+$/, '');
  return `${sign}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** `units` × `basisPoints` / 10000, rounded down (fees never round up against the worker). */
export function share(units: bigint, basisPoints: number): bigint {
  return (units * BigInt(basisPoints)) / 10_000n;
}
