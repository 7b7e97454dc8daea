/**
 * The inbox: threads of typed messages, and the worker's side of an attempt.
 * A worker claims a thread and gets a lease token; every later worker write
 * carries the token and is refused (lease_lost) once the lease is over, so a
 * stale worker can never write over its successor.
 */
import type { Db } from "./sqlite.ts";
import * as rt from "./_runtime.ts";
import { OrchError } from "./errors.ts";
import { appendEvent } from "./events.ts";
import { isoTime } from "./_time.ts";
import { foldAttempt } from "./reconcile.ts";
import { getAttemptRow } from "./attempts.ts";

export const MESSAGE_KINDS = ["assignment", "progress", "question", "answer", "result", "failure", "cancel", "note"] as const;
export type MessageKind = (typeof MESSAGE_KINDS)[number];
export type ThreadStatus = "open" | "claimed" | "closed";

export const DEFAULT_LEASE_SECONDS = 600;

export interface Message {
  id: number;
  thread_id: number;
  kind: MessageKind;
  from: string;
  to: string | null;
  body: string;
  payload: unknown;
  created_at: string;
}

export interface Lease {
  worker: string;
  claimed_at: string;
  expires_at: string;
  seconds: number;
}

export interface Thread {
  id: number;
  run_id: string | null;
  task_id: string | null;
  attempt_id: number | null;
  subject: string;
  assigned_to: string | null;
  created_by: string;
  status: ThreadStatus;
  lease: Lease | null;
  message_count: number;
  last_message_id: number | null;
  created_at: string;
  updated_at: string;
}

export interface ThreadRow {
  id: number;
  run_id: string | null;
  task_id: string | null;
  attempt_id: number | null;
  subject: string;
  assigned_to: string | null;
  created_by: string;
  status: ThreadStatus;
  lease_token: string | null;
  created_at: number;
  updated_at: number;
}

export interface LeaseRow {
  token: string;
  thread_id: number;
  worker: string;
  seconds: number;
  claimed_at: number;
  expires_at: number;
  ended_at: number | null;
  end_reason: string | null;
}

interface MessageRow {
  id: number;
  thread_id: number;
  kind: MessageKind;
  sender: string;
  recipient: string | null;
  body: string;
  payload_json: string | null;
  created_at: number;
}

export function toMessage(r: MessageRow): Message {
  return {
    id: r.id,
    thread_id: r.thread_id,
    kind: r.kind,
    from: r.sender,
    to: r.recipient,
    body: r.body,
    payload: r.payload_json ? JSON.parse(r.payload_json) : null,
    created_at: isoTime(r.created_at),
  };
}

export function toLease(l: LeaseRow | undefined): Lease | null {
  if (!l) return null;
  return { worker: l.worker, claimed_at: isoTime(l.claimed_at), expires_at: isoTime(l.expires_at), seconds: l.seconds };
}

export function currentLease(db: Db, thread: ThreadRow): LeaseRow | undefined {
  if (!thread.lease_token) return undefined;
  return db.get<LeaseRow>("SELECT * FROM leases WHERE token = ? AND ended_at IS NULL", [thread.lease_token]);
}

export function toThread(db: Db, r: ThreadRow): Thread {
  const stats = db.get<{ n: number; last: number | null }>("SELECT count(*) AS n, max(id) AS last FROM messages WHERE thread_id = ?", [r.id])!;
  return {
    id: r.id,
    run_id: r.run_id,
    task_id: r.task_id,
    attempt_id: r.attempt_id,
    subject: r.subject,
    assigned_to: r.assigned_to,
    created_by: r.created_by,
    status: r.status,
    lease: toLease(currentLease(db, r)),
    message_count: stats.n,
    last_message_id: stats.last,
    created_at: isoTime(r.created_at),
    updated_at: isoTime(r.updated_at),
  };
}

export function findThreadRow(db: Db, id: number): ThreadRow | undefined {
  return db.get<ThreadRow>("SELECT * FROM threads WHERE id = ?", [id]);
}

export function getThreadRow(db: Db, id: number): ThreadRow {
  const row = findThreadRow(db, id);
  if (!row) throw new OrchError("not_found", `thread ${id} does not exist`, { hint: "list threads with `inbox list`" });
  return row;
}

export interface NewThread {
  run_id?: string | null;
  task_id?: string | null;
  attempt_id?: number | null;
  subject: string;
  assigned_to?: string | null;
  created_by: string;
}

export function createThread(db: Db, t: NewThread): number {
  const now = rt.now();
  return db.get<{ id: number }>(
    `INSERT INTO threads (run_id, task_id, attempt_id, subject, assigned_to, created_by, status, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?) RETURNING id`,
    [t.run_id ?? null, t.task_id ?? null, t.attempt_id ?? null, t.subject, t.assigned_to ?? null, t.created_by, now, now],
  )!.id;
}

export interface NewMessage {
  thread_id: number;
  kind: MessageKind;
  from: string;
  to?: string | null;
  body: string;
  payload?: unknown;
}

export function postMessage(db: Db, m: NewMessage): Message {
  const now = rt.now();
  const row = db.get<MessageRow>(
    `INSERT INTO messages (thread_id, kind, sender, recipient, body, payload_json, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
    [m.thread_id, m.kind, m.from, m.to ?? null, m.body, m.payload === undefined || m.payload === null ? null : JSON.stringify(m.payload), now],
  )!;
  db.run("UPDATE threads SET updated_at = ? WHERE id = ?", [now, m.thread_id]);
  return toMessage(row);
}

export function setThreadStatus(db: Db, threadId: number, status: ThreadStatus, leaseToken: string | null): void {
  db.run("UPDATE threads SET status = ?, lease_token = ?, updated_at = ? WHERE id = ?", [status, leaseToken, rt.now(), threadId]);
}

export function endLease(db: Db, token: string, reason: string): void {
  db.run("UPDATE leases SET ended_at = ?, end_reason = ? WHERE token = ? AND ended_at IS NULL", [rt.now(), reason, token]);
}

// ---- free-standing use: send, list, show -----------------------------------

export interface SendInput {
  thread?: number;
  to?: string;
  from: string;
  subject?: string;
  kind?: MessageKind;
  body: string;
  payload?: unknown;
}

/** Posts a message: on a new free-standing thread, or as a reply on an existing one. */
export function send(db: Db, input: SendInput): { thread: Thread; message: Message; created_thread: boolean } {
  let threadId = input.thread;
  let created = false;
  if (threadId === undefined) {
    if (!input.to) throw new OrchError("usage", "a new thread needs a recipient: give --to WORKER (or --thread ID to reply)");
    threadId = createThread(db, { subject: input.subject ?? firstLine(input.body), assigned_to: input.to, created_by: input.from });
    created = true;
  }
  const thread = getThreadRow(db, threadId);
  const kind = input.kind ?? "note";
  if (thread.attempt_id !== null && kind !== "note" && kind !== "progress") {
    // these kinds change an attempt's state; on an attempt's thread they go through the
    // lease-checked worker verbs and the leader's verbs, so a stale worker can never
    // overwrite its successor with a token-less send
    throw new OrchError("invalid_state", `thread ${thread.id} belongs to an attempt: a ${kind} cannot be sent on it with \`inbox send\``, {
      hint: "workers use `inbox ask`, `done` or `fail` with their lease token; the leader uses `orch answer`, `orch cancel` or `orch reassign`",
    });
  }
  const to = input.to ?? (input.from === thread.assigned_to ? thread.created_by : thread.assigned_to);
  const message = postMessage(db, { thread_id: threadId, kind, from: input.from, to, body: input.body, payload: input.payload });
  return { thread: toThread(db, getThreadRow(db, threadId)), message, created_thread: created };
}

function firstLine(text: string): string {
  const line = text.trim().split(/\r?\n/, 1)[0] ?? "";
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}

export interface ListFilter {
  to?: string;
  run?: string;
  status?: ThreadStatus;
  limit?: number;
}

export function listThreads(db: Db, f: ListFilter = {}): Thread[] {
  const where: string[] = [];
  const params: (string | number)[] = [];
  if (f.to !== undefined) (where.push("assigned_to = ?"), params.push(f.to));
  if (f.run !== undefined) (where.push("run_id = ?"), params.push(f.run));
  if (f.status !== undefined) (where.push("status = ?"), params.push(f.status));
  const sql = `SELECT * FROM threads ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`;
  return db.all<ThreadRow>(sql, [...params, f.limit ?? 100]).map((r) => toThread(db, r)).reverse();
}

/** The newest message of one kind on a thread (e.g. the open question). */
export function latestMessageOfKind(db: Db, threadId: number, kind: MessageKind): Message | undefined {
  const row = db.get<MessageRow>("SELECT * FROM messages WHERE thread_id = ? AND kind = ? ORDER BY id DESC LIMIT 1", [threadId, kind]);
  return row && toMessage(row);
}

/**
 * What a claimer needs to read: the first message (the assignment) and the
 * latest ones, in order. `messages_truncated` says that some in between were
 * left out (read them with `inbox show --thread ID --after N`).
 */
export function recentMessages(db: Db, threadId: number, max = 200): { messages: Message[]; messages_truncated: boolean } {
  const first = db.all<MessageRow>("SELECT * FROM messages WHERE thread_id = ? ORDER BY id LIMIT 1", [threadId]);
  const latest = db.all<MessageRow>("SELECT * FROM messages WHERE thread_id = ? ORDER BY id DESC LIMIT ?", [threadId, max]).reverse();
  const total = Number(db.value("SELECT count(*) FROM messages WHERE thread_id = ?", [threadId]));
  const rows = first.length > 0 && latest[0]?.id !== first[0]!.id ? [first[0]!, ...latest] : latest;
  return { messages: rows.map(toMessage), messages_truncated: rows.length < total };
}

export function threadMessages(db: Db, threadId: number, afterId = 0, limit = 1000): Message[] {
  return db.all<MessageRow>("SELECT * FROM messages WHERE thread_id = ? AND id > ? ORDER BY id LIMIT ?", [threadId, afterId, limit]).map(toMessage);
}

export function showThread(db: Db, threadId: number, afterId = 0): { thread: Thread; messages: Message[] } {
  const row = getThreadRow(db, threadId);
  return { thread: toThread(db, row), messages: threadMessages(db, threadId, afterId) };
}

// ---- the worker's side -----------------------------------------------------

export interface ClaimInput {
  worker: string;
  thread?: number;
  leaseSeconds?: number;
}

export interface ClaimResult {
  thread: Thread;
  lease: Lease & { token: string };
  messages: Message[];
}

function nextClaimable(db: Db, worker: string): ThreadRow | undefined {
  return db.get<ThreadRow>("SELECT * FROM threads WHERE assigned_to = ? AND status = 'open' ORDER BY id LIMIT 1", [worker]);
}

/** Expires a thread's lapsed lease (through the attempt fold when it has one). */
function settleThread(db: Db, thread: ThreadRow, now: number): ThreadRow {
  if (thread.attempt_id !== null) {
    foldAttempt(db, getAttemptRow(db, thread.attempt_id), now);
  } else {
    const lease = currentLease(db, thread);
    if (lease && lease.expires_at <= now) {
      endLease(db, lease.token, "expired");
      setThreadStatus(db, thread.id, "open", null);
    }
  }
  return getThreadRow(db, thread.id);
}

/** Claims a thread (by id, or the oldest open one addressed to the worker). Exactly one claimer wins. */
export function claim(db: Db, input: ClaimInput): ClaimResult {
  const now = rt.now();
  let thread: ThreadRow | undefined;
  if (input.thread !== undefined) {
    thread = settleThread(db, getThreadRow(db, input.thread), now);
  } else {
    for (const t of db.all<ThreadRow>("SELECT * FROM threads WHERE assigned_to = ? AND status = 'claimed'", [input.worker])) settleThread(db, t, now);
    thread = nextClaimable(db, input.worker);
    if (!thread) {
      throw new OrchError("not_found", `no open thread is addressed to ${input.worker}`, {
        hint: "the leader must dispatch a task to this worker first; `inbox list --to WORKER` shows its threads",
      });
    }
  }
  if (thread.assigned_to !== null && thread.assigned_to !== input.worker) {
    throw new OrchError("invalid_state", `thread ${thread.id} is addressed to ${thread.assigned_to}, not ${input.worker}`, {
      hint: `claim it as ${thread.assigned_to}, or ask the leader to reassign the task`,
    });
  }
  if (thread.status === "claimed") {
    const lease = currentLease(db, thread)!;
    throw new OrchError("already_claimed", `thread ${thread.id} is already claimed by ${lease.worker} until ${isoTime(lease.expires_at)}`, {
      hint: "another worker holds it; wait for its lease to end or ask the leader",
    });
  }
  if (thread.status === "closed") throw closedThreadError(db, thread);
  const seconds = input.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
  const token = rt.randomToken();
  db.run("INSERT INTO leases (token, thread_id, worker, seconds, claimed_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)", [
    token,
    thread.id,
    input.worker,
    seconds,
    now,
    now + seconds * 1000,
  ]);
  setThreadStatus(db, thread.id, "claimed", token);
  if (thread.attempt_id !== null) foldAttempt(db, getAttemptRow(db, thread.attempt_id), now, input.worker);
  const row = getThreadRow(db, thread.id);
  const lease = db.get<LeaseRow>("SELECT * FROM leases WHERE token = ?", [token])!;
  return { thread: toThread(db, row), lease: { ...toLease(lease)!, token }, ...recentMessages(db, thread.id) };
}

function closedThreadError(db: Db, thread: ThreadRow): OrchError {
  if (thread.attempt_id !== null) {
    const a = getAttemptRow(db, thread.attempt_id);
    return new OrchError("invalid_state", `thread ${thread.id} is closed: attempt ${a.number} of task ${a.task_id} is ${a.status}${a.end_reason ? ` (${a.end_reason})` : ""}`, {
      hint: "there is nothing left to do on this thread; the leader decides what happens next",
    });
  }
  return new OrchError("invalid_state", `thread ${thread.id} is closed`);
}

function leaseLostReason(db: Db, lease: LeaseRow, thread: ThreadRow, now: number): string {
  const what = thread.attempt_id !== null
    ? (() => {
      const a = getAttemptRow(db, thread.attempt_id!);
      return `attempt ${a.number} of task ${a.task_id}`;
    })()
    : `thread ${thread.id}`;
  switch (lease.end_reason ?? (lease.expires_at <= now ? "expired" : "")) {
    case "expired":
      return `the lease on ${what} expired at ${isoTime(lease.expires_at)}`;
    case "cancelled":
      return `${what} was cancelled by the leader`;
    case "reassigned": {
      const next = successorOf(db, thread);
      return `${what} was reassigned${next ? ` to ${next.worker} (attempt ${next.number})` : " to another worker"}`;
    }
    case "released":
      return `the lease on ${what} was released`;
    case "done":
    case "failed":
      return `${what} has already finished (${lease.end_reason})`;
    default:
      return `the lease on ${what} ended (${lease.end_reason ?? "unknown"})`;
  }
}

/** The attempt that replaced the one on this thread, if any (for lease_lost messages). */
function successorOf(db: Db, thread: ThreadRow): { worker: string; number: number } | undefined {
  if (thread.attempt_id === null) return undefined;
  const a = getAttemptRow(db, thread.attempt_id);
  return db.get<{ worker: string; number: number }>(
    "SELECT worker, number FROM attempts WHERE run_id = ? AND task_id = ? AND number > ? ORDER BY number LIMIT 1",
    [a.run_id, a.task_id, a.number],
  );
}

/** The live lease for a token, or a lease_lost error saying what happened to the attempt. */
export function requireLease(db: Db, token: string, now: number): { lease: LeaseRow; thread: ThreadRow } {
  const found = db.get<LeaseRow>("SELECT * FROM leases WHERE token = ?", [token]);
  if (!found) {
    throw new OrchError("lease_lost", "this lease token is not known to the database", {
      hint: "use the token printed by `inbox claim` for this database (--db)",
    });
  }
  const thread = getThreadRow(db, found.thread_id);
  if (found.ended_at === null && found.expires_at > now && thread.lease_token === token) return { lease: found, thread };
  throw new OrchError("lease_lost", `lease lost: ${leaseLostReason(db, found, thread, now)}; stop working on it`, {
    hint: `your writes are refused so they cannot overwrite a successor; \`inbox show --thread ${thread.id}\` shows what the leader said`,
    details: { thread_id: thread.id, attempt_id: thread.attempt_id, end_reason: found.end_reason ?? "expired" },
  });
}

function extendLease(db: Db, lease: LeaseRow, now: number, seconds?: number): LeaseRow {
  const s = seconds ?? lease.seconds;
  db.run("UPDATE leases SET expires_at = ?, seconds = ? WHERE token = ?", [now + s * 1000, s, lease.token]);
  return db.get<LeaseRow>("SELECT * FROM leases WHERE token = ?", [lease.token])!;
}

export interface WorkerWriteResult {
  thread: Thread;
  lease: Lease | null;
  message?: Message;
}

function workerResult(db: Db, threadId: number, message?: Message): WorkerWriteResult {
  const thread = toThread(db, getThreadRow(db, threadId));
  return { thread, lease: thread.lease, ...(message ? { message } : {}) };
}

export function heartbeat(db: Db, token: string, leaseSeconds?: number): WorkerWriteResult {
  const now = rt.now();
  const { lease, thread } = requireLease(db, token, now);
  extendLease(db, lease, now, leaseSeconds);
  return workerResult(db, thread.id);
}

/** Posts a worker message of `kind` under the lease and folds it into the attempt. */
function workerPost(db: Db, token: string, kind: MessageKind, body: string, payload?: unknown): WorkerWriteResult {
  const now = rt.now();
  const { lease, thread } = requireLease(db, token, now);
  if (kind === "progress" || kind === "question") extendLease(db, lease, now);
  const message = postMessage(db, { thread_id: thread.id, kind, from: lease.worker, to: thread.created_by, body, payload });
  if (thread.attempt_id !== null) {
    const a = getAttemptRow(db, thread.attempt_id);
    if (kind === "progress") {
      appendEvent(db, {
        run_id: a.run_id,
        type: "task_progress",
        task_id: a.task_id,
        attempt_id: a.id,
        thread_id: thread.id,
        message_id: message.id,
        actor: lease.worker,
        data: { body: preview(body) },
      });
    }
    // a further question on an already blocked attempt changes no state, but the leader must hear of it
    if (kind === "question" && a.status === "blocked") {
      appendEvent(db, {
        run_id: a.run_id,
        type: "task_blocked",
        task_id: a.task_id,
        attempt_id: a.id,
        thread_id: thread.id,
        message_id: message.id,
        actor: lease.worker,
        data: { question: preview(body) },
      });
    }
    foldAttempt(db, a, now);
  } else if (kind === "result" || kind === "failure") {
    endLease(db, token, kind === "result" ? "done" : "failed");
    setThreadStatus(db, thread.id, "closed", null);
  }
  return workerResult(db, thread.id, message);
}

export function preview(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

export const progress = (db: Db, token: string, body: string, payload?: unknown) => workerPost(db, token, "progress", body, payload);
export const ask = (db: Db, token: string, body: string, payload?: unknown) => workerPost(db, token, "question", body, payload);
export const finish = (db: Db, token: string, body: string, result?: unknown) => workerPost(db, token, "result", body, result);
export const fail = (db: Db, token: string, body: string, payload?: unknown) => workerPost(db, token, "failure", body, payload);

/** Gives the thread back: the lease ends, the thread can be claimed again. */
export function release(db: Db, token: string): WorkerWriteResult {
  const now = rt.now();
  const { lease, thread } = requireLease(db, token, now);
  endLease(db, lease.token, "released");
  setThreadStatus(db, thread.id, "open", null);
  if (thread.attempt_id !== null) foldAttempt(db, getAttemptRow(db, thread.attempt_id), now);
  return workerResult(db, thread.id);
}

/** Messages addressed to a worker after a cursor (answers, cancellations, notes). */
export function messagesFor(db: Db, worker: string, afterId: number, threadId?: number, kinds?: readonly string[]): Message[] {
  const where = ["recipient = ?", "id > ?"];
  const params: (string | number)[] = [worker, afterId];
  if (threadId !== undefined) (where.push("thread_id = ?"), params.push(threadId));
  if (kinds && kinds.length > 0) (where.push(`kind IN (${kinds.map(() => "?").join(",")})`), params.push(...kinds));
  return db.all<MessageRow>(`SELECT * FROM messages WHERE ${where.join(" AND ")} ORDER BY id LIMIT 500`, params).map(toMessage);
}

