/**
 * ORCH_DEBUG_TIMING=1: the CLI prints one line to stderr as it finishes,
 * `orch-timing {"total_ms":…,"lock_wait_ms":…,…}`, with the time since the
 * process started and the phases of its write (scripts/bench.mjs reads it).
 * Off, it costs one environment lookup.
 */
import * as rt from "../lib/_runtime.ts";
import type { WritePhase } from "../lib/storage.ts";

const enabled = Boolean(rt.env("ORCH_DEBUG_TIMING"));
const phases: Record<string, number> = {};

const round = (ms: number) => Math.round(ms * 10) / 10;

/** Adds to a phase's time (a command may write more than once). */
export const onTiming: ((phase: WritePhase, ms: number) => void) | undefined = enabled
  ? (phase, ms) => void (phases[`${phase}_ms`] = round((phases[`${phase}_ms`] ?? 0) + ms))
  : undefined;

/** Records the time since the process started at a named point. */
export function mark(name: string): void {
  if (enabled) phases[`${name}_at_ms`] = round(performance.now());
}

/** The stderr line, or "" when timing is off. */
export function timingLine(): string {
  if (!enabled) return "";
  return `orch-timing ${JSON.stringify({ total_ms: round(performance.now()), ...phases })}\n`;
}
