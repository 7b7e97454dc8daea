/**
 * Attempts: one try at a task by one worker, with its inbox thread. The
 * leader's verbs live here: dispatch, answer, retry, reassign, cancel.
 * A task has at most one active attempt; history is never deleted.
 */
import type { Db } from "./sqlite.ts";
import * as rt from "./_runtime.ts";
import { OrchError } from "./errors.ts";
import { appendEvent } from "./events.ts";
import { assertRunOpen, getRun, setRunStatus } from "./runs.ts";
import { assertReady, describeBlockers, getTaskRow, isActive, waitingOn, setTaskStatus, type TaskRow, toTask, type Task } from "./tasks.ts";
import { createThread, currentLease, endLease, getThreadRow, type Lease, type LeaseRow, type Message, latestMessageOfKind, postMessage, setThreadStatus, toLease } from "./inbox.ts";
import { foldAttempt } from "./reconcile.ts";
import { isoTime } from "./_time.ts";

export type AttemptStatus = "dispatched" | "running" | "blocked" | "done" | "failed" | "cancelled";
export const EXECUTION_MODES = ["analysis", "code"] as const;
export type ExecutionMode = (typeof EXECUTION_MODES)[number];

export interface AttemptRow {
  id: number;
  run_id: string;
  task_id: string;
  number: number;
  worker: string;
  mode: ExecutionMode;
  status: AttemptStatus;
  thread_id: number;
  end_reason: string | null;
  created_at: number;
  claimed_at: number | null;
  ended_at: number | null;
  repo_path: string | null;
  base_ref: string | null;
  base_commit: string | null;
  branch: string | null;
  worktree_path: string | null;
  worktree_removed_at: number | null;
}

/** The attempt as printed by dispatch, status and friends (part of the JSON contract). */
export interface Attempt {
  id: number;
  run_id: string;
  task_id: string;
  number: number;
  assigned_to: string;
  execution_mode: ExecutionMode;
  status: AttemptStatus;
  thread_id: number;
  end_reason: string | null;
  lease: Lease | null;
  created_at: string;
  claimed_at: string | null;
  ended_at: string | null;
  repo_path: string | null;
  base_ref: string | null;
  base_commit: string | null;
  branch: string | null;
  worktree_path: string | null;
  worktree_removed_at: string | null;
}

/** `lease`: the thread's live lease when the caller has already looked it up (status reads them all in one query). */
export function toAttempt(db: Db, r: AttemptRow, lease?: LeaseRow | null): Attempt {
  return {
    id: r.id,
    run_id: r.run_id,
    task_id: r.task_id,
    number: r.number,
    assigned_to: r.worker,
    execution_mode: r.mode,
    status: r.status,
    thread_id: r.thread_id,
    end_reason: r.end_reason,
    lease: toLease(lease === undefined ? currentLease(db, getThreadRow(db, r.thread_id)) : (lease ?? undefined)),
    created_at: isoTime(r.created_at),
    claimed_at: isoTime(r.claimed_at),
    ended_at: isoTime(r.ended_at),
    repo_path: r.repo_path,
    base_ref: r.base_ref,
    base_commit: r.base_commit,
    branch: r.branch,
    worktree_path: r.worktree_path,
    worktree_removed_at: isoTime(r.worktree_removed_at),
  };
}

export function getAttemptRow(db: Db, id: number): AttemptRow {
  const row = db.get<AttemptRow>("SELECT * FROM attempts WHERE id = ?", [id]);
  if (!row) throw new OrchError("not_found", `attempt ${id} does not exist`);
  return row;
}

export function latestAttemptRow(db: Db, runId: string, taskId: string): AttemptRow | undefined {
  return db.get<AttemptRow>("SELECT * FROM attempts WHERE run_id = ? AND task_id = ? ORDER BY number DESC LIMIT 1", [runId, taskId]);
}

export function activeAttemptRow(db: Db, runId: string, taskId: string): AttemptRow | undefined {
  return db.get<AttemptRow>(
    "SELECT * FROM attempts WHERE run_id = ? AND task_id = ? AND status IN ('dispatched','running','blocked') ORDER BY number DESC LIMIT 1",
    [runId, taskId],
  );
}

export function listAttemptRows(db: Db, runId: string, taskId?: string): AttemptRow[] {
  return taskId === undefined
    ? db.all<AttemptRow>("SELECT * FROM attempts WHERE run_id = ? ORDER BY id", [runId])
    : db.all<AttemptRow>("SELECT * FROM attempts WHERE run_id = ? AND task_id = ? ORDER BY number", [runId, taskId]);
}

/** Code-mode fields, prepared by the worktree module before the transaction. */
export interface CodeWorkspace {
  repo_path: string;
  base_ref: string;
  base_commit: string;
  branch: string;
  worktree_path: string;
}

export interface DispatchInput {
  run: string;
  task: string;
  mode: ExecutionMode;
  to?: string;
  body?: string;
  leader?: string;
  workspace?: CodeWorkspace;
}

export interface DispatchResult {
  run_id: string;
  task: Task;
  attempt: Attempt;
  assignment: Message;
}

export function resolveWorker(row: TaskRow, to: string | undefined, verb: string): string {
  const worker = to ?? row.default_to;
  if (!worker) {
    throw new OrchError("usage", `task ${row.id} has no default worker; give ${verb} --to WORKER`, {
      hint: "or add the task with --default-to WORKER",
    });
  }
  return worker;
}

export function nextAttemptNumber(db: Db, runId: string, taskId: string): number {
  return Number(db.value("SELECT coalesce(max(number), 0) + 1 FROM attempts WHERE run_id = ? AND task_id = ?", [runId, taskId]));
}

function defaultAssignmentBody(task: TaskRow): string {
  return task.summary ? `${task.title}\n\n${task.summary}` : task.title;
}

/** Creates attempt N with its thread and assignment message. Caller has checked the task may start. */
function createAttempt(db: Db, row: TaskRow, input: DispatchInput, worker: string): DispatchResult {
  const now = rt.now();
  const leader = input.leader ?? "leader";
  const number = nextAttemptNumber(db, row.run_id, row.id);
  const ws = input.workspace;
  const threadId = createThread(db, {
    run_id: row.run_id,
    task_id: row.id,
    subject: `${row.run_id}/${row.id} attempt ${number}: ${row.title}`,
    assigned_to: worker,
    created_by: leader,
  });
  const attemptId = db.get<{ id: number }>(
    `INSERT INTO attempts (run_id, task_id, number, worker, mode, status, thread_id, created_at,
       repo_path, base_ref, base_commit, branch, worktree_path)
     VALUES (?, ?, ?, ?, ?, 'dispatched', ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
    [row.run_id, row.id, number, worker, input.mode, threadId, now, ws?.repo_path, ws?.base_ref, ws?.base_commit, ws?.branch, ws?.worktree_path],
  )!.id;
  db.run("UPDATE threads SET attempt_id = ? WHERE id = ?", [attemptId, threadId]);
  const run = getRun(db, row.run_id);
  const assignment = postMessage(db, {
    thread_id: threadId,
    kind: "assignment",
    from: leader,
    to: worker,
    body: input.body ?? defaultAssignmentBody(row),
    payload: {
      run_id: row.run_id,
      run_goal: run.goal,
      task_id: row.id,
      title: row.title,
      summary: row.summary,
      acceptance: row.acceptance_json ? JSON.parse(row.acceptance_json) : null,
      attempt_id: attemptId,
      attempt_number: number,
      execution_mode: input.mode,
      ...(ws ?? {}),
    },
  });
  setTaskStatus(db, row.run_id, row.id, "dispatched");
  appendEvent(db, {
    run_id: row.run_id,
    type: "task_dispatched",
    task_id: row.id,
    attempt_id: attemptId,
    thread_id: threadId,
    message_id: assignment.id,
    actor: leader,
    data: { worker, attempt: number, execution_mode: input.mode },
  });
  const attempt = getAttemptRow(db, attemptId);
  return { run_id: row.run_id, task: toTask(getTaskRow(db, row.run_id, row.id)), attempt: toAttempt(db, attempt), assignment };
}

/** Checks a dispatch could go ahead (used before making a worktree, and again inside the write). */
export function checkDispatch(db: Db, input: { run: string; task: string; to?: string }): { row: TaskRow; worker: string; number: number } {
  assertRunOpen(getRun(db, input.run));
  const row = getTaskRow(db, input.run, input.task);
  const worker = resolveWorker(row, input.to, "dispatch");
  assertReady(db, row);
  return { row, worker, number: nextAttemptNumber(db, input.run, input.task) };
}

export function dispatch(db: Db, input: DispatchInput): DispatchResult {
  const { row, worker } = checkDispatch(db, input);
  return createAttempt(db, row, input, worker);
}

/** Ends an active attempt on the leader's word: cancel message, lease ended, thread closed. */
function endAttempt(db: Db, a: AttemptRow, reason: "cancelled" | "reassigned", body: string, leader: string): void {
  const now = rt.now();
  const thread = getThreadRow(db, a.thread_id);
  const lease = currentLease(db, thread);
  if (lease) endLease(db, lease.token, reason);
  postMessage(db, { thread_id: a.thread_id, kind: "cancel", from: leader, to: a.worker, body, payload: { reason } });
  setThreadStatus(db, a.thread_id, "closed", null);
  db.run("UPDATE attempts SET status = 'cancelled', end_reason = ?, ended_at = ? WHERE id = ?", [reason, now, a.id]);
}

export interface RetryInput {
  run: string;
  task: string;
  to?: string;
  body?: string;
  mode?: ExecutionMode;
  leader?: string;
  workspace?: CodeWorkspace;
}

/** Checks a retry could go ahead; returns the previous attempt. */
export function checkRetry(db: Db, input: { run: string; task: string }): { row: TaskRow; previous: AttemptRow | undefined } {
  assertRunOpen(getRun(db, input.run));
  foldAttemptsOf(db, input.run, input.task);
  const row = getTaskRow(db, input.run, input.task);
  if (row.status !== "failed" && row.status !== "cancelled") {
    const hint = isActive(row.status)
      ? "it has an active attempt: use `orch reassign` to replace it"
      : row.status === "pending"
      ? "it was never dispatched: use `orch dispatch`"
      : undefined;
    throw new OrchError("invalid_state", `task ${row.id} cannot be retried: it is ${row.status} (retry is for failed or cancelled tasks)`, { hint });
  }
  // a task cancelled before it ever started may still wait on others
  const blockers = waitingOn(db, row.run_id, row.id);
  if (blockers.length > 0) {
    throw new OrchError("not_ready", `task ${row.id} cannot be retried yet: waiting on ${describeBlockers(blockers)}`, {
      hint: `retry it once those are done; see \`orch status --run ${row.run_id}\``,
      details: { waiting_on: blockers },
    });
  }
  return { row, previous: latestAttemptRow(db, input.run, input.task) };
}

/** A fresh attempt for a failed (or lease-expired, or cancelled) task. */
export function retry(db: Db, input: RetryInput): DispatchResult {
  const { row, previous } = checkRetry(db, input);
  const worker = input.to ?? previous?.worker ?? resolveWorker(row, undefined, "retry");
  const mode = input.mode ?? previous?.mode ?? "analysis";
  const result = createAttempt(db, row, { ...input, mode }, worker);
  appendEvent(db, {
    run_id: row.run_id,
    type: "task_retried",
    task_id: row.id,
    attempt_id: result.attempt.id,
    thread_id: result.attempt.thread_id,
    actor: input.leader ?? "leader",
    data: { previous_attempt: previous?.number ?? null, worker },
  });
  return result;
}

function foldAttemptsOf(db: Db, runId: string, taskId: string): void {
  const a = activeAttemptRow(db, runId, taskId);
  if (a) foldAttempt(db, a, rt.now());
}

export interface ReassignInput extends RetryInput {
  to: string;
}

export function checkReassign(db: Db, input: { run: string; task: string; to?: string }): { row: TaskRow; active: AttemptRow } {
  assertRunOpen(getRun(db, input.run));
  foldAttemptsOf(db, input.run, input.task);
  const row = getTaskRow(db, input.run, input.task);
  const active = activeAttemptRow(db, input.run, input.task);
  if (!active) {
    throw new OrchError("invalid_state", `task ${row.id} has no active attempt to reassign (it is ${row.status})`, {
      hint: row.status === "failed" ? `use \`orch retry --run ${row.run_id} --task ${row.id} --to WORKER\`` : undefined,
    });
  }
  // refusing this keeps a repeated reassign (an agent retrying after a timeout) from cancelling its own result
  if (input.to !== undefined && input.to === active.worker) {
    throw new OrchError("invalid_state", `task ${row.id} is already assigned to ${active.worker} (attempt ${active.number}, ${active.status}); reassign moves a task to another worker`, {
      hint: `to start over with the same worker, \`orch cancel --run ${row.run_id} --task ${row.id}\` then \`orch retry\``,
    });
  }
  return { row, active };
}

/** Cancels the active attempt (its worker gets a cancel message) and dispatches a new one. */
export function reassign(db: Db, input: ReassignInput): DispatchResult & { cancelled_attempt: Attempt } {
  const { row, active } = checkReassign(db, input);
  const leader = input.leader ?? "leader";
  endAttempt(db, active, "reassigned", `This attempt was reassigned to ${input.to}. Stop work on it; further writes will be refused.`, leader);
  appendEvent(db, {
    run_id: row.run_id,
    type: "task_cancelled",
    task_id: row.id,
    attempt_id: active.id,
    thread_id: active.thread_id,
    actor: leader,
    data: { reason: "reassigned", attempt: active.number },
  });
  const result = createAttempt(db, row, { ...input, mode: input.mode ?? active.mode }, input.to);
  appendEvent(db, {
    run_id: row.run_id,
    type: "task_reassigned",
    task_id: row.id,
    attempt_id: result.attempt.id,
    thread_id: result.attempt.thread_id,
    actor: leader,
    data: { from: active.worker, to: input.to, previous_attempt: active.number },
  });
  return { ...result, cancelled_attempt: toAttempt(db, getAttemptRow(db, active.id)) };
}

export interface AnswerInput {
  run: string;
  task: string;
  body: string;
  payload?: unknown;
  leader?: string;
}

/** Answers the open question of a blocked task's active attempt; the task runs again. */
export function answer(db: Db, input: AnswerInput): { task: Task; attempt: Attempt; question: Message; answer: Message } {
  getRun(db, input.run);
  foldAttemptsOf(db, input.run, input.task);
  const row = getTaskRow(db, input.run, input.task);
  const active = activeAttemptRow(db, input.run, input.task);
  if (row.status !== "blocked" || !active) {
    throw new OrchError("invalid_state", `task ${row.id} is not blocked (it is ${row.status}); there is no open question to answer`, {
      hint: `see open questions with \`orch blocked --run ${row.run_id}\``,
    });
  }
  const question = latestMessageOfKind(db, active.thread_id, "question")!;
  const reply = postMessage(db, {
    thread_id: active.thread_id,
    kind: "answer",
    from: input.leader ?? "leader",
    to: active.worker,
    body: input.body,
    payload: input.payload,
  });
  foldAttempt(db, active, rt.now(), input.leader ?? "leader");
  return {
    task: toTask(getTaskRow(db, row.run_id, row.id)),
    attempt: toAttempt(db, getAttemptRow(db, active.id)),
    question,
    answer: reply,
  };
}

export interface CancelInput {
  run: string;
  task?: string;
  body?: string;
  leader?: string;
}

export interface CancelResult {
  run_id: string;
  cancelled_tasks: string[];
  cancelled_attempts: number[];
  already_finished: string[];
  run_cancelled: boolean;
}

function cancelTaskRow(db: Db, row: TaskRow, body: string, leader: string, result: CancelResult): void {
  const active = activeAttemptRow(db, row.run_id, row.id);
  if (active) {
    endAttempt(db, active, "cancelled", body, leader);
    result.cancelled_attempts.push(active.id);
  }
  setTaskStatus(db, row.run_id, row.id, "cancelled", "cancelled by the leader");
  appendEvent(db, {
    run_id: row.run_id,
    type: "task_cancelled",
    task_id: row.id,
    attempt_id: active?.id,
    thread_id: active?.thread_id,
    actor: leader,
    data: { reason: "cancelled by the leader" },
  });
  result.cancelled_tasks.push(row.id);
}

/** Cancels one task, or every unfinished task of the run and the run itself. */
export function cancel(db: Db, input: CancelInput): CancelResult {
  const run = getRun(db, input.run);
  const leader = input.leader ?? "leader";
  const body = input.body ?? "The leader cancelled this task. Stop work on it; further writes will be refused.";
  const result: CancelResult = { run_id: run.id, cancelled_tasks: [], cancelled_attempts: [], already_finished: [], run_cancelled: false };
  if (input.task !== undefined) {
    foldAttemptsOf(db, input.run, input.task);
    const row = getTaskRow(db, input.run, input.task);
    if (row.status === "done" || row.status === "cancelled") {
      throw new OrchError("invalid_state", `task ${row.id} is already ${row.status}; there is nothing to cancel`);
    }
    cancelTaskRow(db, row, body, leader, result);
    return result;
  }
  if (run.status === "cancelled") {
    throw new OrchError("invalid_state", `run ${run.id} is already cancelled`);
  }
  if (run.status === "done") {
    throw new OrchError("invalid_state", `run ${run.id} is already done (every task is done); there is nothing to cancel`);
  }
  for (const row of db.all<TaskRow>("SELECT * FROM tasks WHERE run_id = ? ORDER BY seq", [run.id])) {
    foldAttemptsOf(db, run.id, row.id);
    const fresh = getTaskRow(db, run.id, row.id);
    if (fresh.status === "done" || fresh.status === "cancelled") result.already_finished.push(fresh.id);
    else cancelTaskRow(db, fresh, body, leader, result);
  }
  setRunStatus(db, run.id, "cancelled");
  appendEvent(db, { run_id: run.id, type: "run_cancelled", actor: leader, data: { cancelled_tasks: result.cancelled_tasks.length } });
  result.run_cancelled = true;
  return result;
}
