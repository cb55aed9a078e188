/** Shared CLI output helpers: one-line errors, tables, sizes. */

import { messageOf } from '../errors.js';

/** Thrown by commands to exit with a code after printing `message` (if any) as one line. */
export class CliExit extends Error {
  constructor(
    readonly exitCode: number,
    message = '',
  ) {
    super(message);
  }
}

export function usageError(message: string, hint: string): CliExit {
  return new CliExit(2, `${message}\n${hint}`);
}

/** One line for any error: GridxErrors and parseArgs' TypeErrors both carry a readable message. */
export function errorLine(err: unknown): string {
  return `gridx: ${messageOf(err)}`;
}

export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

export function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
