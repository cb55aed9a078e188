/**
 * A small leveled logger on stderr, never secrets: readable lines for people, or JSON lines
 * for machines (pino, which fastify uses too) with `--log-format json`.
 */

import { pino } from 'pino';
import { invalid } from './errors.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type LogFormat = 'text' | 'json';
const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];
const FORMATS: readonly LogFormat[] = ['text', 'json'];

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** A logger whose lines carry `name` as a prefix. */
  child(name: string): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export function createLogger(
  level: LogLevel = 'info',
  name = 'gridx',
  write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Logger {
  const at = (lvl: Exclude<LogLevel, 'silent'>) => (message: string) => {
    if (ORDER[lvl] < ORDER[level]) return;
    write(`${new Date().toISOString()} ${lvl.toUpperCase().padEnd(5)} [${name}] ${message}`);
  };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (child) => createLogger(level, `${name}:${child}`, write),
  };
}

export const silentLogger: Logger = createLogger('silent');

/** The logger a command's --log-level and --log-format (or GRIDX_LOG_LEVEL, GRIDX_LOG_FORMAT) ask for; 400-style errors for others. */
export function openLogger(options: { level?: string | undefined; format?: string | undefined }, fallbackLevel: LogLevel = 'info'): Logger {
  const level = options.level ?? fallbackLevel;
  if (!LEVELS.includes(level as LogLevel)) throw invalid('--log-level', `must be one of ${LEVELS.join(', ')}; got ${JSON.stringify(level)}`);
  const format = options.format ?? 'text';
  if (!FORMATS.includes(format as LogFormat)) throw invalid('--log-format', `must be "text" (lines for people) or "json" (for machines); got ${JSON.stringify(format)}`);
  if (format === 'text') return createLogger(level as LogLevel);
  // Written synchronously, as the text lines are: the last lines before a crash are kept.
  const root = pino(
    { level: level === 'silent' ? 'silent' : level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' },
    pino.destination({ dest: 2, sync: true }),
  );
  return jsonLogger(root, 'gridx');
}

/** Each line carries `component` (gridx, gridx:scheduler, …) as the text lines carry their prefix. */
function jsonLogger(root: pino.Logger, component: string): Logger {
  const log = root.child({ component });
  return {
    debug: (message) => log.debug(message),
    info: (message) => log.info(message),
    warn: (message) => log.warn(message),
    error: (message) => log.error(message),
    child: (name) => jsonLogger(root, `${component}:${name}`),
  };
}
