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
  /** No credentials, or credentials that match nobody. */
  UNAUTHORIZED: { httpStatus: 401, retryable: false },
  /** The caller is known but may not do this (another runner's lease, another account's task). */
  FORBIDDEN: { httpStatus: 403, retryable: false },
  /** The account's balance does not cover what the request would take from it. */
  PAYMENT_REQUIRED: { httpStatus: 402, retryable: false },
  NOT_FOUND: { httpStatus: 404, retryable: false },
  /** The request conflicts with the current state (for example cancelling a finished job). */
  CONFLICT: { httpStatus: 409, retryable: false },
  /** The node is shutting down or not started; try again or try another node. */
  UNAVAILABLE: { httpStatus: 503, retryable: true },
  /** The Docker engine could not be reached or refused a request. */
  DOCKER_UNAVAILABLE: { httpStatus: 503, retryable: true },
  /** The job's image does not exist locally and could not be pulled. */
  IMAGE_NOT_FOUND: { httpStatus: 400, retryable: false },
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

  constructor(code: ErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GridxError';
    this.code = code;
    this.httpStatus = ErrorCodes[code].httpStatus;
    this.retryable = ErrorCodes[code].retryable;
  }
}

export function isGridxError(err: unknown, code?: ErrorCode): err is GridxError {
  return err instanceof GridxError && (code === undefined || err.code === code);
}

/** A field-level validation error: `field` is the dotted path the user must fix. */
export function invalid(field: string, problem: string): GridxError {
  return new GridxError('INVALID_INPUT', `${field}: ${problem}`);
}

/** The message of anything thrown, for one-line logs and CLI output. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
