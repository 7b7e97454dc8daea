/**
 * Folding thread state into attempt and task state. One function decides
 * what an attempt's state should be from its thread (the decisive messages
 * and the lease); worker writes call it in their own transaction, and
 * `reconcile` calls it for every active attempt (lease expiry, repairs).
 * It is idempotent: a second fold finds nothing to do and writes nothing.
 */
import type { Db } from "./sqlite.ts";
import * as rt from "./_runtime.ts";
import { appendEvent } from "./events.ts";
import { type AttemptRow, type AttemptStatus, getAttemptRow } from "./attempts.ts";
import { currentLease, endLease, getThreadRow, type LeaseRow, preview, setThreadStatus } from "./inbox.ts";
import { finishRunIfComplete, isActive, setTaskStatus } from "./tasks.ts";
import { isoTime } from "./_time.ts";
import { readSnapshot, type StoreOptions, writeTransaction } from "./storage.ts";
import { getRun } from "./runs.ts";

export { getAttemptRow };

interface Decisive {
  id: number;
  kind: "question" | "answer" | "result" | "failure" | "cancel";
  body: string;
  payload_json: string | null;
}

interface Target {
  status: AttemptStatus;
  reason: string | null;
  decisive?: Decisive;
  expiredLease?: LeaseRow;
}

/** What the attempt's state should be, judging by its thread at time `now`. */
function targetOf(db: Db, a: AttemptRow, now: number): Target {
  const decisive = db.get<Decisive>(
    `SELECT id, kind, body, payload_json FROM messages WHERE thread_id = ?
     AND kind IN ('question','answer','result','failure','cancel') ORDER BY id DESC LIMIT 1`,
    [a.thread_id],
  );
  if (decisive?.kind === "result") return { status: "done", reason: null, decisive };
  if (decisive?.kind === "failure") return { status: "failed", reason: `worker reported failure: ${preview(decisive.body, 120)}`, decisive };
  if (decisive?.kind === "cancel") return { status: "cancelled", reason: "cancelled", decisive };
  const lease = currentLease(db, getThreadRow(db, a.thread_id));
  if (lease && lease.expires_at <= now) return { status: "failed", reason: "lease expired", expiredLease: lease };
  if (!lease) return { status: "dispatched", reason: null, decisive };
  if (decisive?.kind === "question") return { status: "blocked", reason: null, decisive };
  return { status: "running", reason: null, decisive };
}

/** True if folding would change this attempt (used to keep reads lock-free). */
export function needsFold(db: Db, a: AttemptRow, now: number): boolean {
  return isActive(a.status) && targetOf(db, a, now).status !== a.status;
}

/**
 * Applies the thread's state to the attempt and its task, with events.
 * Returns true if anything changed.
 */
export function foldAttempt(db: Db, a: AttemptRow, now: number, actor?: string): boolean {
  if (!isActive(a.status)) return false;
  const t = targetOf(db, a, now);
  if (t.status === a.status) return false;
  const thread = getThreadRow(db, a.thread_id);
  const lease = currentLease(db, thread);
  const who = actor ?? lease?.worker ?? t.expiredLease?.worker ?? a.worker;
  const base = { run_id: a.run_id, task_id: a.task_id, attempt_id: a.id, thread_id: a.thread_id, actor: who };
  const terminal = t.status === "done" || t.status === "failed" || t.status === "cancelled";

  if (terminal) {
    if (lease) endLease(db, lease.token, t.expiredLease ? "expired" : t.status);
    setThreadStatus(db, a.thread_id, "closed", null);
    db.run("UPDATE attempts SET status = ?, end_reason = ?, ended_at = ? WHERE id = ?", [t.status, t.reason, now, a.id]);
  } else {
    db.run("UPDATE attempts SET status = ?, claimed_at = coalesce(claimed_at, ?) WHERE id = ?", [t.status, lease ? now : null, a.id]);
  }
  setTaskStatus(db, a.run_id, a.task_id, t.status, t.reason);

  if (a.status === "dispatched" && (t.status === "running" || t.status === "blocked")) {
    appendEvent(db, { ...base, type: "task_claimed", data: { worker: who, lease_expires_at: isoTime(lease?.expires_at) } });
  }
  switch (t.status) {
    case "blocked":
      appendEvent(db, { ...base, type: "task_blocked", message_id: t.decisive?.id, data: { question: preview(t.decisive?.body ?? "") } });
      break;
    case "running":
      if (a.status === "blocked") appendEvent(db, { ...base, type: "task_answered", message_id: t.decisive?.id, actor: "leader" });
      break;
    case "dispatched":
      appendEvent(db, { ...base, type: "task_released" });
      break;
    case "done":
      appendEvent(db, { ...base, type: "task_done", message_id: t.decisive?.id, data: { result: preview(t.decisive?.body ?? "") } });
      finishRunIfComplete(db, a.run_id);
      break;
    case "failed":
      if (t.expiredLease) {
        appendEvent(db, { ...base, type: "lease_expired", data: { worker: t.expiredLease.worker, expired_at: isoTime(t.expiredLease.expires_at) } });
      }
      appendEvent(db, { ...base, type: "task_failed", message_id: t.decisive?.id, data: { reason: t.reason } });
      break;
    case "cancelled":
      appendEvent(db, { ...base, type: "task_cancelled", message_id: t.decisive?.id, data: { reason: t.reason } });
      break;
  }
  return true;
}

function activeAttempts(db: Db, runId: string): AttemptRow[] {
  return db.all<AttemptRow>("SELECT * FROM attempts WHERE run_id = ? AND status IN ('dispatched','running','blocked') ORDER BY id", [runId]);
}

export interface ReconcileResult {
  run_id: string;
  changed: number;
  attempts: { attempt_id: number; task_id: string; from: AttemptStatus; to: AttemptStatus }[];
}

/** Folds every active attempt of the run. Idempotent. */
export function reconcileRun(db: Db, runId: string, now = rt.now()): ReconcileResult {
  getRun(db, runId);
  const result: ReconcileResult = { run_id: runId, changed: 0, attempts: [] };
  for (const a of activeAttempts(db, runId)) {
    if (foldAttempt(db, a, now)) {
      const after = getAttemptRow(db, a.id);
      result.attempts.push({ attempt_id: a.id, task_id: a.task_id, from: a.status, to: after.status });
      result.changed++;
    }
  }
  return result;
}

export function runNeedsReconcile(db: Db, runId: string, now = rt.now()): boolean {
  return activeAttempts(db, runId).some((a) => needsFold(db, a, now));
}

/** The earliest lease expiry among the run's active attempts (so `wait` can wake for it). */
export function nextLeaseExpiry(db: Db, runId: string): number | null {
  const v = db.value<number | null>(
    `SELECT min(l.expires_at) FROM attempts a JOIN threads t ON t.id = a.thread_id
     JOIN leases l ON l.token = t.lease_token AND l.ended_at IS NULL
     WHERE a.run_id = ? AND a.status IN ('dispatched','running','blocked')`,
    [runId],
  );
  return v === null || v === undefined ? null : Number(v);
}

/**
 * `reconcile` as a command: folds what there is to fold. When a lock-free
 * snapshot shows nothing to fold, it takes no lock and writes nothing.
 */
export async function reconcileFile(dbPath: string, runId: string, options: StoreOptions = {}): Promise<ReconcileResult> {
  const snapshot = await readSnapshot(dbPath);
  try {
    getRun(snapshot, runId);
    if (!runNeedsReconcile(snapshot, runId)) return { run_id: runId, changed: 0, attempts: [] };
  } finally {
    snapshot.close();
  }
  return await writeTransaction(dbPath, (db) => reconcileRun(db, runId), options);
}

/**
 * Reads a run after reconciling it. The common case (nothing to fold) takes
 * no lock and writes nothing; otherwise the fold is written first.
 */
export async function readReconciled<T>(dbPath: string, runId: string, read: (db: Db) => T, options: StoreOptions = {}): Promise<T> {
  let db = await readSnapshot(dbPath);
  try {
    if (runNeedsReconcile(db, runId)) {
      db.close();
      await writeTransaction(dbPath, (w) => reconcileRun(w, runId), options);
      db = await readSnapshot(dbPath);
    }
    return read(db);
  } finally {
    db.close();
  }
}
