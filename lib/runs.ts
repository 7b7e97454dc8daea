/** Runs: the unit a leader plans and operates. */
import type { Db } from "./sqlite.ts";
import * as rt from "./_runtime.ts";
import { OrchError } from "./errors.ts";
import { appendEvent } from "./events.ts";
import { isoTime } from "./_time.ts";

export type RunStatus = "active" | "done" | "cancelled";

export interface Run {
  id: string;
  goal: string;
  summary: string;
  status: RunStatus;
  created_at: string;
  updated_at: string;
}

interface RunRow {
  id: string;
  goal: string;
  summary: string;
  status: RunStatus;
  created_at: number;
  updated_at: number;
}

const toRun = (r: RunRow): Run => ({ ...r, created_at: isoTime(r.created_at), updated_at: isoTime(r.updated_at) });

export interface RunInit {
  run: string;
  goal: string;
  summary?: string;
}

/** One field whose stored value differs from what a repeated create call gave. */
export interface Difference {
  field: string;
  existing: unknown;
  given: unknown;
}

/** Compares what a repeated create call gave with what is stored; undefined (flag omitted) matches anything. */
export function differences(pairs: readonly [field: string, existing: unknown, given: unknown][]): Difference[] {
  return pairs
    .filter(([, existing, given]) => given !== undefined && existing !== given)
    .map(([field, existing, given]) => ({ field, existing, given }));
}

/** The conflict error of a repeated create call, naming every field that differs. */
export function conflictError(what: string, diffs: readonly Difference[], hint: string): OrchError {
  const show = (v: unknown) => (v === null || v === undefined ? "unset" : typeof v === "number" ? String(v) : JSON.stringify(v));
  const list = diffs.map((d) => `${d.field} is ${show(d.existing)}, not ${show(d.given)}`).join("; ");
  return new OrchError("conflict", `${what} already exists with different content: ${list}`, {
    hint,
    details: { differences: diffs },
  });
}

/**
 * Creates a run. Repeating the call with the same arguments is a no-op that
 * reports existed: true (agents retry after timeouts); a flag left out of the
 * repeat is not compared. Different content is a conflict naming the field.
 */
export function initRun(db: Db, input: RunInit): { run: Run; existed: boolean } {
  const summary = input.summary ?? "";
  const existing = db.get<RunRow>("SELECT * FROM runs WHERE id = ?", [input.run]);
  if (existing) {
    const diffs = differences([
      ["goal", existing.goal, input.goal],
      ["summary", existing.summary, input.summary],
    ]);
    if (diffs.length > 0) {
      throw conflictError(`run ${input.run}`, diffs, "choose another run id, or repeat the original arguments (`orch run show` prints them)");
    }
    return { run: toRun(existing), existed: true };
  }
  const now = rt.now();
  db.run("INSERT INTO runs (id, goal, summary, status, created_at, updated_at) VALUES (?, ?, ?, 'active', ?, ?)", [
    input.run,
    input.goal,
    summary,
    now,
    now,
  ]);
  appendEvent(db, { run_id: input.run, type: "run_created", actor: "leader", data: { goal: input.goal } });
  return { run: getRun(db, input.run), existed: false };
}

export function findRun(db: Db, runId: string): Run | undefined {
  const row = db.get<RunRow>("SELECT * FROM runs WHERE id = ?", [runId]);
  return row && toRun(row);
}

export function getRun(db: Db, runId: string): Run {
  const run = findRun(db, runId);
  if (!run) {
    throw new OrchError("not_found", `run ${runId} does not exist`, { hint: "list runs with `orch run list`, or create it with `orch run init`" });
  }
  return run;
}

export function listRuns(db: Db): Run[] {
  return db.all<RunRow>("SELECT * FROM runs ORDER BY created_at, id").map(toRun);
}

export function setRunStatus(db: Db, runId: string, status: RunStatus): void {
  db.run("UPDATE runs SET status = ?, updated_at = ? WHERE id = ?", [status, rt.now(), runId]);
}

export function assertRunOpen(run: Run): void {
  if (run.status === "cancelled") {
    throw new OrchError("invalid_state", `run ${run.id} is cancelled`, { hint: "start a new run with `orch run init`" });
  }
}

export type TaskCounts = Record<string, number> & { total: number };

export function taskCounts(db: Db, runId: string): TaskCounts {
  const counts: TaskCounts = { total: 0 };
  for (const s of ["pending", "dispatched", "running", "blocked", "done", "failed", "cancelled"]) counts[s] = 0;
  for (const row of db.all<{ status: string; n: number }>("SELECT status, count(*) AS n FROM tasks WHERE run_id = ? GROUP BY status", [runId])) {
    counts[row.status] = row.n;
    counts.total += row.n;
  }
  return counts;
}
