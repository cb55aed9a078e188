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

/** Bytes for people: "512 B", "3.4 KiB", "12.0 MiB", "1.5 GiB". */
export function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const [unit, factor] = bytes < 1024 ** 2 ? ['KiB', 1024] : bytes < 1024 ** 3 ? ['MiB', 1024 ** 2] : ['GiB', 1024 ** 3];
  return `${(bytes / factor).toFixed(1)} ${unit}`;
}

/** Transfers above this size show progress. */
export const PROGRESS_FROM_BYTES = 4 * 1024 * 1024;

/**
 * A progress line for a transfer ("label 12.0/48.0 MiB"), redrawn in place with \r at most
 * ten times a second. Only on a terminal and only past 4 MiB: piped stderr gets nothing.
 */
export function progressLine(label: string, stream: NodeJS.WriteStream = process.stderr): { update: (done: number, total: number | undefined) => void; end: () => void } {
  let drawn = false;
  let last = 0;
  const mib = (n: number) => (n / 1024 ** 2).toFixed(1);
  return {
    update(done, total) {
      if (!stream.isTTY || total === undefined || total <= PROGRESS_FROM_BYTES) return;
      const now = Date.now();
      if (done < total && now - last < 100) return;
      last = now;
      drawn = true;
      stream.write(`\r${label} ${mib(done)}/${mib(total)} MiB`);
    },
    end() {
      // Clear the line so that what follows starts clean.
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
  };
}
