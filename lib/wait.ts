/**
 * Blocking waits without a busy core: poll the database file's metadata (a
 * stat, no read) every 40 ms, or every 100 ms once the file has been still
 * for 2 s, and reload only when a writer has replaced the file, or when a
 * watched lease is due to run out. Measured (scripts/bench_plan.mjs): about
 * 0.2-0.3 CPU-seconds per idle minute, wake-up well under 250 ms.
 */
import * as rt from "./_runtime.ts";
import type { Db } from "./sqlite.ts";
import { fileStamp, readSnapshot, type StoreOptions, writeTransaction } from "./storage.ts";
import { listEvents, lastEventId, maxEventId, type OrchEvent, parseEventTypes } from "./events.ts";
import { OrchError } from "./errors.ts";
import { nextLeaseExpiry, reconcileRun, runNeedsReconcile } from "./reconcile.ts";
import { getRun } from "./runs.ts";
import { messagesFor, type Message } from "./inbox.ts";

/** Poll interval right after a start or a change: writes come in bursts (progress, then a result). */
export const POLL_INTERVAL_MS = 40;
/** Poll interval once the file has been still for IDLE_AFTER_MS: a stat costs little, but 25 a second add up over a long wait. */
export const IDLE_POLL_INTERVAL_MS = 100;
export const IDLE_AFTER_MS = 2000;
const MAX_EVENTS = 1000;

export interface PollOptions {
  timeoutMs: number;
  pollMs?: number;
}

/** What a poll check found: a value (done), when to look again, or a write to make first. */
interface PollOutcome<T> {
  value?: T;
  wakeAt?: number | null;
  /** Runs after the snapshot is closed (a reader must not hold the file open while it is replaced: Windows refuses the rename). */
  write?: () => Promise<unknown>;
}

/**
 * Calls `check` on a fresh snapshot now and after every change of the file,
 * until it returns a value or the timeout passes. `wakeAt` may name a time at
 * which to check again even if the file did not change (lease expiries).
 */
export async function pollDatabase<T>(
  dbPath: string,
  check: (db: Db) => PollOutcome<T> | Promise<PollOutcome<T>>,
  options: PollOptions,
): Promise<{ value?: T; timed_out: boolean }> {
  const deadline = rt.now() + options.timeoutMs;
  for (;;) {
    const stamp = fileStamp(dbPath);
    const changedAt = rt.now();
    const db = await readSnapshot(dbPath);
    let outcome: PollOutcome<T>;
    try {
      outcome = await check(db);
    } finally {
      db.close();
    }
    if (outcome.write) await outcome.write();
    if (outcome.value !== undefined) return { value: outcome.value, timed_out: false };
    const wakeAt = Math.min(deadline, outcome.wakeAt ?? Infinity);
    while (fileStamp(dbPath) === stamp && rt.now() < wakeAt) {
      const pollMs = options.pollMs ?? (rt.now() - changedAt < IDLE_AFTER_MS ? POLL_INTERVAL_MS : IDLE_POLL_INTERVAL_MS);
      await rt.sleep(Math.max(1, Math.min(pollMs, wakeAt - rt.now())));
    }
    if (fileStamp(dbPath) === stamp && rt.now() >= deadline) return { timed_out: true };
  }
}

export interface WaitEventsInput {
  run: string;
  types?: readonly string[];
  after: number;
  timeoutMs: number;
}

export interface WaitEventsResult {
  run_id: string;
  events: OrchEvent[];
  last_event_id: number;
  timed_out: boolean;
}

/**
 * Blocks until events of the given types (default: any) exist after event id
 * `after`, then returns all of them (up to 1000) with the cursor to pass as
 * the next `after`. Reconciles as it goes, so a lease running out while it
 * waits yields lease_expired/task_failed even if no other process writes.
 * On timeout it returns no events and timed_out: true.
 */
export async function waitForEvents(dbPath: string, input: WaitEventsInput, options: StoreOptions = {}): Promise<WaitEventsResult> {
  const types = input.types === undefined || input.types.length === 0 ? undefined : parseEventTypes(input.types);
  let lastSeen = input.after;
  const outcome = await pollDatabase<OrchEvent[]>(dbPath, async (db) => {
    getRun(db, input.run);
    const end = maxEventId(db);
    if (input.after > end) {
      // ids only grow, so this cursor came from somewhere else and would hide the next `end - after` events
      throw new OrchError("usage", `--after-event ${input.after} is past the end of the event log (the latest event id is ${end})`, {
        hint: `pass the last_event_id printed by status, run show or a previous wait (for run ${input.run}: ${lastEventId(db, input.run)})`,
      });
    }
    if (runNeedsReconcile(db, input.run)) {
      return { wakeAt: rt.now(), write: () => writeTransaction(dbPath, (w) => reconcileRun(w, input.run), options) };
    }
    lastSeen = Math.max(input.after, lastEventId(db, input.run));
    const events = listEvents(db, input.run, input.after, types, MAX_EVENTS);
    // a full page may not reach the end of the log: the cursor stops at what was returned
    if (events.length === MAX_EVENTS) lastSeen = events[events.length - 1]!.id;
    return events.length > 0 ? { value: events } : { wakeAt: nextLeaseExpiry(db, input.run) };
  }, { timeoutMs: input.timeoutMs });
  const events = outcome.value ?? [];
  return {
    run_id: input.run,
    events,
    last_event_id: lastSeen,
    timed_out: outcome.timed_out,
  };
}

export interface WaitMessagesInput {
  worker: string;
  thread?: number;
  after: number;
  kinds?: readonly string[];
  timeoutMs: number;
}

/** Blocks until messages addressed to the worker arrive after the cursor. */
export async function waitForMessages(dbPath: string, input: WaitMessagesInput): Promise<{ messages: Message[]; timed_out: boolean; cursor: number }> {
  const outcome = await pollDatabase<Message[]>(dbPath, (db) => {
    const found = messagesFor(db, input.worker, input.after, input.thread, input.kinds);
    return found.length > 0 ? { value: found } : {};
  }, { timeoutMs: input.timeoutMs });
  const messages = outcome.value ?? [];
  return { messages, timed_out: outcome.timed_out, cursor: messages.length ? messages[messages.length - 1]!.id : input.after };
}
