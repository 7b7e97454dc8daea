/**
 * The run's append-only event log. Every state change appends its events in
 * the same transaction, so `wait` and `status` can trust the log.
 */
import type { Db } from "./sqlite.ts";
import * as rt from "./_runtime.ts";
import { isoTime } from "./_time.ts";
import { OrchError } from "./errors.ts";

/** Every event type orch writes. Part of the JSON contract. */
export const EVENT_TYPES = [
  "run_created",
  "run_finished",
  "run_cancelled",
  "task_added",
  "dep_added",
  "task_dispatched",
  "task_claimed",
  "task_progress",
  "task_blocked",
  "task_answered",
  "task_done",
  "task_failed",
  "task_cancelled",
  "task_released",
  "task_retried",
  "task_reassigned",
  "lease_expired",
  "worktree_removed",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export const EVENT_DESCRIPTIONS: Readonly<Record<EventType, string>> = {
  run_created: "run init created the run",
  run_finished: "every task of the run is done",
  run_cancelled: "the run was cancelled",
  task_added: "task add created a task",
  dep_added: "dep add recorded a dependency",
  task_dispatched: "dispatch, retry or reassign created an attempt",
  task_claimed: "a worker claimed the attempt's thread",
  task_progress: "the worker reported progress",
  task_blocked: "the worker asked a question and waits",
  task_answered: "the leader answered; the task runs again",
  task_done: "the worker finished with a result",
  task_failed: "the attempt failed (worker failure or lease expiry)",
  task_cancelled: "the task or its attempt was cancelled",
  task_released: "the worker released its claim; the thread can be claimed again",
  task_retried: "retry made a fresh attempt",
  task_reassigned: "reassign moved the task to another worker",
  lease_expired: "a worker's lease ran out",
  worktree_removed: "cleanup removed an attempt's worktree",
};

/** Checks a list of event type names (e.g. from `wait --for`); an unknown name is a usage error. */
export function parseEventTypes(names: readonly string[], flag = "--for"): EventType[] {
  const unknown = names.filter((n) => !(EVENT_TYPES as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new OrchError("usage", `${flag}: unknown event type${unknown.length > 1 ? "s" : ""} ${unknown.map((n) => JSON.stringify(n)).join(", ")}`, {
      hint: `known types: ${EVENT_TYPES.join(", ")}`,
    });
  }
  return [...new Set(names)] as EventType[];
}

export interface EventInput {
  run_id: string;
  type: EventType;
  task_id?: string | null;
  attempt_id?: number | null;
  thread_id?: number | null;
  message_id?: number | null;
  actor?: string | null;
  data?: Record<string, unknown>;
}

export interface OrchEvent {
  id: number;
  run_id: string;
  type: EventType;
  task_id: string | null;
  attempt_id: number | null;
  thread_id: number | null;
  message_id: number | null;
  actor: string | null;
  data: Record<string, unknown>;
  created_at: string;
}

export function appendEvent(db: Db, e: EventInput): number {
  const row = db.get<{ id: number }>(
    `INSERT INTO events (run_id, type, task_id, attempt_id, thread_id, message_id, actor, data_json, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
    [e.run_id, e.type, e.task_id, e.attempt_id, e.thread_id, e.message_id, e.actor, e.data ? JSON.stringify(e.data) : null, rt.now()],
  );
  return row!.id;
}

interface EventRow {
  id: number;
  run_id: string;
  type: EventType;
  task_id: string | null;
  attempt_id: number | null;
  thread_id: number | null;
  message_id: number | null;
  actor: string | null;
  data_json: string | null;
  created_at: number;
}

function toEvent(r: EventRow): OrchEvent {
  return {
    id: r.id,
    run_id: r.run_id,
    type: r.type,
    task_id: r.task_id,
    attempt_id: r.attempt_id,
    thread_id: r.thread_id,
    message_id: r.message_id,
    actor: r.actor,
    data: r.data_json ? JSON.parse(r.data_json) : {},
    created_at: isoTime(r.created_at),
  };
}

/** Events of a run after `afterId`, optionally only of some types, oldest first. */
export function listEvents(db: Db, runId: string, afterId = 0, types?: readonly string[], limit = 1000): OrchEvent[] {
  const rows = types && types.length > 0
    ? db.all<EventRow>(
      `SELECT * FROM events WHERE run_id = ? AND id > ? AND type IN (${types.map(() => "?").join(",")}) ORDER BY id LIMIT ?`,
      [runId, afterId, ...types, limit],
    )
    : db.all<EventRow>(`SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?`, [runId, afterId, limit]);
  return rows.map(toEvent);
}

/** The id of the run's latest event (0 if none): the cursor to pass to `wait --after-event`. */
export function lastEventId(db: Db, runId: string): number {
  return Number(db.value("SELECT coalesce(max(id), 0) FROM events WHERE run_id = ?", [runId]));
}

/** The latest event id of the whole database (ids are shared by every run). */
export function maxEventId(db: Db): number {
  return Number(db.value("SELECT coalesce(max(id), 0) FROM events"));
}
