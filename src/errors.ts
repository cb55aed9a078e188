/**
 * One error base class and one catalogue of codes. Code branches on `code`, never on
 * message text; every message says what went wrong and what to do about it.
 */

export const ErrorCodes = {
  /** The request is malformed or a field is invalid; the message names the field. */
  INVALID_INPUT: { httpStatus: 400, retryable: false },
  /** The job asks for more than this node allows; the message names the limit. */
  LIMIT_EXCEEDED: { httpStatus: 400, retryable: false },
  /** The request body is larger than the node accepts. */
  BODY_TOO_LARGE: { httpStatus: 413, retryable: false },
  UNSUPPORTED_MEDIA_TYPE: { httpStatus: 415, retryable: false },
  /** A Range header asks for nothing of the file. */
  RANGE_NOT_SATISFIABLE: { httpStatus: 416, retryable: false },
  /** No credentials, or credentials that match nobody. */
  UNAUTHORIZED: { httpStatus: 401, retryable: false },
  /** The caller is known but may not do this (another runner's lease, another account's task). */
  FORBIDDEN: { httpStatus: 403, retryable: false },
  /** The account's balance does not cover what the request would take from it. */
  PAYMENT_REQUIRED: { httpStatus: 402, retryable: false },
  NOT_FOUND: { httpStatus: 404, retryable: false },
  /** The caller is past one of its limits (rate, queued jobs, open streams); the message names it. */
  RATE_LIMITED: { httpStatus: 429, retryable: true },
  /** The request conflicts with the current state (for example cancelling a finished job). */
  CONFLICT: { httpStatus: 409, retryable: false },
  /** The node is shutting down or not started; try again or try another node. */
  UNAVAILABLE: { httpStatus: 503, retryable: true },
  /** The Docker engine could not be reached or refused a request. */
  DOCKER_UNAVAILABLE: { httpStatus: 503, retryable: true },
  /** The job's image does not exist locally and could not be pulled. */
  IMAGE_NOT_FOUND: { httpStatus: 400, retryable: false },
  /** An input of the job could not be fetched, was missing, or did not match its digest. */
  INPUT_UNAVAILABLE: { httpStatus: 400, retryable: false },
  /** A configuration file, variable or flag is invalid. */
  CONFIG_INVALID: { httpStatus: 500, retryable: false },
  /** A request to another node failed. */
  REMOTE_ERROR: { httpStatus: 502, retryable: true },
  INTERNAL: { httpStatus: 500, retryable: false },
} as const satisfies Record<string, { httpStatus: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ErrorCodes;

export class GridxError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly retryable: boolean;
  /** When to try again, for RATE_LIMITED (sent as Retry-After). */
  readonly retryAfterSeconds?: number;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retryAfterSeconds?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GridxError';
    this.code = code;
    this.httpStatus = ErrorCodes[code].httpStatus;
    this.retryable = ErrorCodes[code].retryable;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isGridxError(err: unknown, code?: ErrorCode): err is GridxError {
  return err instanceof GridxError && (code === undefined || err.code === code);
}

/** A field-level validation error: `field` is the dotted path the user must fix (clipped: it may hold their keys). */
export function invalid(field: string, problem: string): GridxError {
  return new GridxError('INVALID_INPUT', `${clip(field, QUOTE_MAX)}: ${problem}`);
}

/** The message of anything thrown, for one-line logs and CLI output. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** How much of a caller's input an error message repeats: enough to recognize, never a flood. */
export const QUOTE_MAX = 200;

/**
 * `value` as an error message shows it: strings and objects as JSON, numbers and the like
 * as written, clipped to `max` characters with "…". Every echo of user input goes through here.
 */
export function quote(value: unknown, max = QUOTE_MAX): string {
  let text: string;
  if (typeof value === 'string' || (typeof value === 'object' && value !== null)) {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = Object.prototype.toString.call(value); // cyclic, or holds a bigint
    }
  } else {
    text = String(value);
  }
  return clip(text, max);
}

/** `text` cut to `max` characters, marked with "…" where cut. */
export function clip(text: string, max = QUOTE_MAX): string {
  if (text.length <= max) return text;
  // Never cut a surrogate pair in half.
  const end = /[\uD800-\uDBFF]/.test(text.charAt(max - 1)) ? max - 1 : max;
  return `${text.slice(0, end)}…`;
}
