/** The one place where results and errors become output. */
import { type OrchError } from "../lib/errors.ts";
import type { CommandResult, Io } from "./_context.ts";
import { paint } from "./_format.ts";

export function renderResult(result: CommandResult, json: boolean, io: Io): number {
  if (json) io.stdout(`${JSON.stringify({ ok: true, ...result.data })}\n`);
  else if (result.text) io.stdout(result.text.endsWith("\n") ? result.text : `${result.text}\n`);
  return result.exitCode ?? 0;
}

export function renderError(err: OrchError, json: boolean, io: Io): number {
  if (json) {
    const error: Record<string, unknown> = { code: err.code, message: err.message };
    if (err.hint) error.hint = err.hint;
    if (err.details) error.details = err.details;
    io.stdout(`${JSON.stringify({ ok: false, error })}\n`);
  } else {
    io.stderr(`${paint("red", "error")} [${err.code}]: ${err.message}\n`);
    if (err.hint) io.stderr(`hint: ${err.hint}\n`);
  }
  return err.exitCode;
}
