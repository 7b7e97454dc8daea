/**
 * The one error model of orch. Everything that can go wrong for a user is an
 * OrchError with a stable `code`; the CLI renders it in exactly one place.
 */

/** Stable error codes. They are part of the JSON contract: add, never rename. */
export type ErrorCode =
  | "usage"
  | "not_found"
  | "db_missing"
  | "db_invalid"
  | "db_too_new"
  | "db_unwritable"
  | "conflict"
  | "invalid_state"
  | "not_ready"
  | "cycle"
  | "already_claimed"
  | "lease_lost"
  | "busy"
  | "lock_lost"
  | "git_failed"
  | "internal";

/** Exit codes, one per family of error code. Documented in every --help. */
export const EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  usage: 2,
  not_found: 3,
  db_missing: 3,
  db_invalid: 7,
  db_too_new: 7,
  db_unwritable: 7,
  conflict: 4,
  invalid_state: 4,
  not_ready: 4,
  cycle: 4,
  already_claimed: 4,
  lease_lost: 5,
  busy: 6,
  lock_lost: 6,
  git_failed: 8,
  internal: 1,
};

export interface OrchErrorOptions {
  hint?: string;
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class OrchError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly hint?: string;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: OrchErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "OrchError";
    this.code = code;
    this.exitCode = EXIT_CODES[code];
    this.hint = options.hint;
    this.details = options.details;
  }
}

/** Wraps anything thrown into an OrchError, keeping OrchErrors as they are. */
export function toOrchError(err: unknown): OrchError {
  if (err instanceof OrchError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new OrchError("internal", `internal error: ${message}`, {
    cause: err,
    hint: "this is a bug in orch; please report it with the command that caused it",
  });
}
