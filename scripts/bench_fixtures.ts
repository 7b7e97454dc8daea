/**
 * Benchmark databases, built in one process through the library (runs, tasks,
 * dependencies, dispatch, claim, finish) plus direct SQL for the bulk of the
 * progress traffic, so a 100,000-message database takes seconds, not 100,000
 * CLI calls. Rows are the ones the CLI writes: a progress report is a message,
 * an event with its preview, and a lease extension.
 *
 * scripts/bench.mjs bundles this file with esbuild (Node 20 cannot run .ts).
 */
import { writeFileSync } from "node:fs";
import { openBytes, type Db } from "../lib/sqlite.ts";
import { migrate } from "../lib/schema.ts";
import { initRun } from "../lib/runs.ts";
import { addTask } from "../lib/tasks.ts";
import { addDeps } from "../lib/deps.ts";
import { answer, dispatch } from "../lib/attempts.ts";
import { claim, finish, preview, progress } from "../lib/inbox.ts";
import { writeTransaction } from "../lib/storage.ts";

export interface FixtureSpec {
  /** Finished runs kept as history before the active one. */
  historyRuns: number;
  /** Tasks per run. */
  tasks: number;
  /** Messages in the whole database (assignments, progress, results). */
  messages: number;
}

export interface Running {
  task: string;
  token: string;
  thread: number;
  worker: string;
}

export interface Fixture {
  path: string;
  run: string;
  /** Claimed, running attempts of the active run, one per worker (for progress writes and questions). */
  running: Running[];
  /** Ready tasks of the active run, never dispatched (for dispatch benchmarks). */
  ready: string[];
  counts: Record<string, number>;
  bytes: number;
}

/** Deterministic pseudo-random numbers, so every run of the bench builds the same rows. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  "the parser handler test fixture timeout retry cache schema migration index query worker leader branch commit " +
  "diff review failing passing flaky build lint type error module import export config route endpoint request " +
  "response latency database lock file write read stream buffer queue event status ready blocked done result " +
  "checked updated added removed renamed split merged fixed found three two several most of all none because " +
  "after before while then so and but with without into from for on in at by to of a an this that"
).split(" ");

function text(rand: () => number, min: number, max: number): string {
  const target = min + Math.floor(rand() * (max - min));
  const out: string[] = [];
  let n = 0;
  while (n < target) {
    const w = WORDS[Math.floor(rand() * WORDS.length)]!;
    out.push(w);
    n += w.length + 1;
  }
  return `${out.join(" ").slice(0, target - 1)}.`;
}

const WORKERS = 16;
const worker = (i: number) => `worker-${i % WORKERS}`;

/** The shape of a run: which tasks are done, running, ready, or waiting. */
function plan(tasks: number, active: boolean) {
  if (!active) return { done: tasks, running: 0, ready: 0 };
  // at least 16 running attempts: the contention benchmark gives each worker its own lease
  const done = Math.floor(tasks * 0.6);
  const running = Math.min(tasks - done, Math.max(16, Math.floor(tasks * 0.05)));
  const ready = Math.min(200, Math.floor(tasks * 0.2), tasks - done - running);
  return { done, running, ready };
}

function buildRun(db: Db, rand: () => number, runId: string, tasks: number, active: boolean, threads: number[], running: Running[], ready: string[]) {
  initRun(db, { run: runId, goal: text(rand, 40, 120), summary: text(rand, 200, 600) });
  const p = plan(tasks, active);
  const id = (i: number) => `T${String(i + 1).padStart(4, "0")}`;
  for (let i = 0; i < tasks; i++) {
    addTask(db, {
      run: runId,
      task: id(i),
      title: text(rand, 30, 90),
      summary: text(rand, 150, 700),
      default_to: worker(i),
      acceptance: { kind: rand() < 0.5 ? "analysis" : "code", checks: [text(rand, 20, 60), text(rand, 20, 60)] },
    });
  }
  // Dependencies: done tasks hang off earlier done tasks; the waiting tail depends on running tasks.
  const runningStart = p.done;
  const readyStart = runningStart + p.running;
  const waitingStart = readyStart + p.ready;
  for (let i = 1; i < tasks; i++) {
    if (i >= runningStart && i < waitingStart) {
      if (p.done > 0 && rand() < 0.5) addDeps(db, runId, id(i), [id(Math.floor(rand() * p.done))]);
      continue;
    }
    if (i >= waitingStart) {
      addDeps(db, runId, id(i), [id(runningStart + Math.floor(rand() * Math.max(1, p.running)))]);
      continue;
    }
    if (rand() < 0.7) addDeps(db, runId, id(i), [id(Math.floor(rand() * i))]);
  }
  for (let i = 0; i < p.done + p.running; i++) {
    const d = dispatch(db, { run: runId, task: id(i), mode: "analysis", body: `${text(rand, 300, 1200)}` });
    const c = claim(db, { worker: d.attempt.assigned_to, thread: d.attempt.thread_id, leaseSeconds: 86_400 });
    threads.push(d.attempt.thread_id);
    if (i < p.done) finish(db, c.lease.token, text(rand, 500, 2500), { files_changed: Math.floor(rand() * 10) });
    else running.push({ task: id(i), token: c.lease.token, thread: d.attempt.thread_id, worker: d.attempt.assigned_to });
  }
  for (let i = readyStart; i < waitingStart; i++) ready.push(id(i));
}

/**
 * Progress messages on existing threads, with the event and lease extension
 * the CLI's `inbox progress` writes (the message ids interleave across threads).
 */
function addProgress(db: Db, rand: () => number, threads: number[], count: number) {
  const now = Date.now();
  const meta = new Map<number, { run_id: string; task_id: string; attempt_id: number; sender: string; created_by: string }>();
  for (const t of threads) {
    meta.set(t, db.get<any>(
      `SELECT t.run_id, t.task_id, t.attempt_id, a.worker AS sender, t.created_by FROM threads t JOIN attempts a ON a.id = t.attempt_id WHERE t.id = ?`,
      [t],
    ));
  }
  for (let i = 0; i < count; i++) {
    const thread = threads[Math.floor(rand() * threads.length)]!;
    const m = meta.get(thread)!;
    const body = text(rand, 80, 420);
    const at = now - (count - i) * 1000;
    const messageId = db.get<{ id: number }>(
      `INSERT INTO messages (thread_id, kind, sender, recipient, body, payload_json, created_at) VALUES (?, 'progress', ?, ?, ?, NULL, ?) RETURNING id`,
      [thread, m.sender, m.created_by, body, at],
    )!.id;
    db.run(
      `INSERT INTO events (run_id, type, task_id, attempt_id, thread_id, message_id, actor, data_json, created_at) VALUES (?, 'task_progress', ?, ?, ?, ?, ?, ?, ?)`,
      [m.run_id, m.task_id, m.attempt_id, thread, messageId, m.sender, JSON.stringify({ body: preview(body) }), at],
    );
  }
}

/** Builds one benchmark database at `path` (overwriting it). */
export async function makeFixture(path: string, spec: FixtureSpec, seed = 7): Promise<Fixture> {
  const rand = rng(seed);
  const db = await openBytes();
  try {
    db.exec("BEGIN");
    migrate(db, path);
    const threads: number[] = [];
    const ignoredRunning: Running[] = [];
    const ignoredReady: string[] = [];
    for (let r = 0; r < spec.historyRuns; r++) buildRun(db, rand, `history-${r + 1}`, spec.tasks, false, threads, ignoredRunning, ignoredReady);
    const running: Running[] = [];
    const ready: string[] = [];
    const run = "bench";
    buildRun(db, rand, run, spec.tasks, true, threads, running, ready);
    const have = Number(db.value("SELECT count(*) FROM messages"));
    if (spec.messages > have) addProgress(db, rand, threads, spec.messages - have);
    db.exec("COMMIT");
    const counts: Record<string, number> = {};
    for (const t of ["runs", "tasks", "deps", "attempts", "threads", "messages", "events", "leases"]) counts[t] = Number(db.value(`SELECT count(*) FROM ${t}`));
    const bytes = db.export();
    writeFileSync(path, bytes);
    return { path, run, running, ready, counts, bytes: bytes.length };
  } finally {
    db.close();
  }
}

/** One `inbox progress` write made in this process; resolves once the new file is in place. */
export async function writeProgress(path: string, token: string, body: string): Promise<number> {
  return await writeTransaction(path, (db) => progress(db, token, body).message!.id);
}

/** One `orch answer` made in this process; resolves once the new file is in place. */
export async function writeAnswer(path: string, run: string, task: string, body: string): Promise<number> {
  return await writeTransaction(path, (db) => answer(db, { run, task, body }).answer.id);
}
