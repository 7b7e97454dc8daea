/** Tasks of a run, and which of them are ready to dispatch. */
import type { Db } from "./sqlite.ts";
import * as rt from "./_runtime.ts";
import { OrchError } from "./errors.ts";
import { appendEvent } from "./events.ts";
import { assertRunOpen, conflictError, differences, getRun, setRunStatus } from "./runs.ts";
import { isoTime } from "./_time.ts";

/**
 * pending: not dispatched yet (ready when every dependency is done);
 * dispatched: an attempt exists, no worker has claimed it; running; blocked
 * (a question is open); done; failed (the latest attempt failed); cancelled.
 */
export type TaskStatus = "pending" | "dispatched" | "running" | "blocked" | "done" | "failed" | "cancelled";
/** The statuses of a task, or of an attempt, that has a live attempt. */
export const ACTIVE_STATUSES = ["dispatched", "running", "blocked"] as const;

export function isActive(status: string): boolean {
  return (ACTIVE_STATUSES as readonly string[]).includes(status);
}

export interface Task {
  run_id: string;
  id: string;
  title: string;
  summary: string;
  default_to: string | null;
  acceptance: Record<string, unknown> | null;
  status: TaskStatus;
  status_reason: string | null;
  created_at: string;
  updated_at: string;
}

export interface TaskRow {
  run_id: string;
  id: string;
  seq: number;
  title: string;
  summary: string;
  default_to: string | null;
  acceptance_json: string | null;
  status: TaskStatus;
  status_reason: string | null;
  created_at: number;
  updated_at: number;
}

export function toTask(r: TaskRow): Task {
  return {
    run_id: r.run_id,
    id: r.id,
    title: r.title,
    summary: r.summary,
    default_to: r.default_to,
    acceptance: r.acceptance_json ? JSON.parse(r.acceptance_json) : null,
    status: r.status,
    status_reason: r.status_reason,
    created_at: isoTime(r.created_at),
    updated_at: isoTime(r.updated_at),
  };
}

/** JSON with sorted keys, so equal objects compare equal. */
function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

export interface TaskInput {
  run: string;
  task: string;
  title: string;
  summary?: string;
  default_to?: string;
  acceptance?: Record<string, unknown>;
}

/**
 * Adds a task. Repeating the call with the same arguments succeeds and
 * reports existed: true; a flag left out of the repeat is not compared.
 * Different content is a conflict naming each differing field.
 */
export function addTask(db: Db, input: TaskInput): { task: Task; existed: boolean } {
  const run = getRun(db, input.run);
  const acceptanceJson = input.acceptance === undefined ? undefined : canonicalJson(input.acceptance);
  const existing = db.get<TaskRow>("SELECT * FROM tasks WHERE run_id = ? AND id = ?", [input.run, input.task]);
  if (existing) {
    const diffs = differences([
      ["title", existing.title, input.title],
      ["summary", existing.summary, input.summary],
      ["default_to", existing.default_to, input.default_to],
      ["acceptance", existing.acceptance_json, acceptanceJson],
    ]).map((d) => (d.field === "acceptance" ? { ...d, existing: existing.acceptance_json === null ? null : JSON.parse(existing.acceptance_json), given: input.acceptance } : d));
    if (diffs.length > 0) {
      throw conflictError(`task ${input.task} of run ${input.run}`, diffs, "choose another task id, or repeat the original arguments (`orch task show` prints them)");
    }
    return { task: toTask(existing), existed: true };
  }
  assertRunOpen(run);
  const now = rt.now();
  const seq = Number(db.value("SELECT coalesce(max(seq), 0) + 1 FROM tasks WHERE run_id = ?", [input.run]));
  db.run(
    `INSERT INTO tasks (run_id, id, seq, title, summary, default_to, acceptance_json, status, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
    [input.run, input.task, seq, input.title, input.summary ?? "", input.default_to ?? null, acceptanceJson ?? null, now, now],
  );
  // a finished run has new work again; the event says so
  const reopened = run.status === "done";
  if (reopened) setRunStatus(db, input.run, "active");
  appendEvent(db, {
    run_id: input.run,
    type: "task_added",
    task_id: input.task,
    actor: "leader",
    data: reopened ? { title: input.title, run_reopened: true } : { title: input.title },
  });
  return { task: getTask(db, input.run, input.task), existed: false };
}

export function findTaskRow(db: Db, runId: string, taskId: string): TaskRow | undefined {
  return db.get<TaskRow>("SELECT * FROM tasks WHERE run_id = ? AND id = ?", [runId, taskId]);
}

export function getTaskRow(db: Db, runId: string, taskId: string): TaskRow {
  const row = findTaskRow(db, runId, taskId);
  if (!row) {
    getRun(db, runId);
    throw new OrchError("not_found", `task ${taskId} does not exist in run ${runId}`, {
      hint: `list the run's tasks with \`orch status --run ${runId}\``,
    });
  }
  return row;
}

export function getTask(db: Db, runId: string, taskId: string): Task {
  return toTask(getTaskRow(db, runId, taskId));
}

export function listTaskRows(db: Db, runId: string): TaskRow[] {
  return db.all<TaskRow>("SELECT * FROM tasks WHERE run_id = ? ORDER BY seq", [runId]);
}

export function setTaskStatus(db: Db, runId: string, taskId: string, status: TaskStatus, reason: string | null = null): void {
  db.run("UPDATE tasks SET status = ?, status_reason = ?, updated_at = ? WHERE run_id = ? AND id = ?", [
    status,
    reason,
    rt.now(),
    runId,
    taskId,
  ]);
}

/** Marks the run done (with its event) once every task is done. */
export function finishRunIfComplete(db: Db, runId: string): boolean {
  const open = Number(db.value("SELECT count(*) FROM tasks WHERE run_id = ? AND status != 'done'", [runId]));
  const run = getRun(db, runId);
  if (open > 0 || run.status !== "active") return false;
  setRunStatus(db, runId, "done");
  appendEvent(db, { run_id: runId, type: "run_finished", actor: "orch" });
  return true;
}

export interface Blocker {
  task_id: string;
  status: TaskStatus;
}

/** What a task waits on: its dependencies that are not done, in task order. */
export function waitingOn(db: Db, runId: string, taskId: string): Blocker[] {
  return db.all<Blocker>(
    `SELECT u.id AS task_id, u.status AS status FROM deps d
     JOIN tasks u ON u.run_id = d.run_id AND u.id = d.depends_on
     WHERE d.run_id = ? AND d.task_id = ? AND u.status != 'done' ORDER BY u.seq`,
    [runId, taskId],
  );
}

/** Every not-done dependency of every task in the run, keyed by task id. */
export function waitingOnAll(db: Db, runId: string): Map<string, Blocker[]> {
  const map = new Map<string, Blocker[]>();
  const rows = db.all<{ waiter: string; task_id: string; status: TaskStatus }>(
    `SELECT d.task_id AS waiter, u.id AS task_id, u.status AS status FROM deps d
     JOIN tasks u ON u.run_id = d.run_id AND u.id = d.depends_on
     WHERE d.run_id = ? AND u.status != 'done' ORDER BY u.seq`,
    [runId],
  );
  for (const r of rows) {
    const list = map.get(r.waiter) ?? [];
    list.push({ task_id: r.task_id, status: r.status });
    map.set(r.waiter, list);
  }
  return map;
}

export function describeBlockers(blockers: readonly Blocker[]): string {
  return blockers.map((b) => `${b.task_id} (${b.status})`).join(", ");
}

/**
 * Tasks that can be dispatched now: not yet dispatched, every dependency done.
 * Order: the order the tasks were added (stable across calls).
 */
export function readyTasks(db: Db, runId: string): Task[] {
  getRun(db, runId);
  return db.all<TaskRow>(
    `SELECT t.* FROM tasks t
     WHERE t.run_id = ? AND t.status = 'pending'
       AND NOT EXISTS (
         SELECT 1 FROM deps d JOIN tasks u ON u.run_id = d.run_id AND u.id = d.depends_on
         WHERE d.run_id = t.run_id AND d.task_id = t.id AND u.status != 'done')
     ORDER BY t.seq`,
    [runId],
  ).map(toTask);
}

/** Throws not_ready/invalid_state unless the task can be dispatched now. */
export function assertReady(db: Db, row: TaskRow): void {
  if (row.status !== "pending") {
    const what = isActive(row.status)
      ? `it already has an active attempt (${row.status})`
      : `it is ${row.status}`;
    const hint = row.status === "failed"
      ? `use \`orch retry --run ${row.run_id} --task ${row.id}\` for a fresh attempt`
      : isActive(row.status)
      ? `use \`orch reassign\` to move it to another worker, or \`orch status --run ${row.run_id}\` to see it`
      : undefined;
    throw new OrchError("invalid_state", `task ${row.id} cannot be dispatched: ${what}`, { hint });
  }
  const blockers = waitingOn(db, row.run_id, row.id);
  if (blockers.length > 0) {
    throw new OrchError("not_ready", `task ${row.id} is not ready: waiting on ${describeBlockers(blockers)}`, {
      hint: `see what is ready with \`orch ready --run ${row.run_id}\``,
      details: { waiting_on: blockers },
    });
  }
}
