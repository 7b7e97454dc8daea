/**
 * `orch archive` through the real CLI (Node bundle): a run finished by real
 * worker commands moves, row for row, into an archive database; the live file
 * shrinks; the other run keeps working; refusals change nothing; a repeat
 * after a crash between the two steps neither duplicates nor fails.
 */
import { afterAll, beforeAll, expect, test } from "vitest";
import { copyFileSync, existsSync, mkdirSync, statSync } from "node:fs";
import * as path from "node:path";
import { cliFor, fails, ok, run, sha256File, sqlite3, tempDb } from "./_helpers.ts";

const OLD = "old_run";
const LIVE = "live_run";
const TABLES = ["tasks", "deps", "attempts", "threads", "messages", "leases", "events"] as const;

/** Each table's rows of one run, as sqlite3 prints them (ordered), so copies can be compared exactly. */
function rowsOf(db: string, runId: string): Record<string, string> {
  const threads = `SELECT id FROM threads WHERE run_id = '${runId}'`;
  const q: Record<string, string> = {
    runs: `SELECT * FROM runs WHERE id = '${runId}'`,
    tasks: `SELECT * FROM tasks WHERE run_id = '${runId}' ORDER BY id`,
    deps: `SELECT * FROM deps WHERE run_id = '${runId}' ORDER BY task_id, depends_on`,
    attempts: `SELECT * FROM attempts WHERE run_id = '${runId}' ORDER BY id`,
    threads: `SELECT * FROM threads WHERE run_id = '${runId}' ORDER BY id`,
    messages: `SELECT * FROM messages WHERE thread_id IN (${threads}) ORDER BY id`,
    leases: `SELECT * FROM leases WHERE thread_id IN (${threads}) ORDER BY token`,
    events: `SELECT * FROM events WHERE run_id = '${runId}' ORDER BY id`,
  };
  return Object.fromEntries(Object.entries(q).map(([t, sql]) => [t, sqlite3(db, sql)]));
}

function countsOf(db: string, runId: string): Record<string, number> {
  const threads = `SELECT id FROM threads WHERE run_id = '${runId}'`;
  const where: Record<(typeof TABLES)[number], string> = {
    tasks: `run_id = '${runId}'`,
    deps: `run_id = '${runId}'`,
    attempts: `run_id = '${runId}'`,
    threads: `run_id = '${runId}'`,
    messages: `thread_id IN (${threads})`,
    leases: `thread_id IN (${threads})`,
    events: `run_id = '${runId}'`,
  };
  return Object.fromEntries(TABLES.map((t) => [t, Number(sqlite3(db, `SELECT count(*) FROM ${t} WHERE ${where[t]}`))]));
}

const integrity = (db: string) => sqlite3(db, "PRAGMA integrity_check");
const size = (f: string) => statSync(f).size;

/** Dispatches, claims (as the task's worker), reports progress and finishes one task with real worker commands. */
function work(cli: ReturnType<typeof cliFor>, runId: string, task: string, worker: string, progress: number): void {
  ok(cli.orch("dispatch", "--run", runId, "--task", task, "--execution-mode", "analysis", "--body", `Do ${task}. ${"Context. ".repeat(60)}`));
  const token = ok(cli.inbox("claim", "--as", worker)).lease.token;
  for (let i = 0; i < progress; i++) ok(cli.inbox("progress", "--token", token, "--body", `step ${i} of ${task}: ${"log line ".repeat(40)}`));
  ok(cli.inbox("done", "--token", token, "--body", `${task} finished. ${"Result detail. ".repeat(100)}`));
}

let t: ReturnType<typeof tempDb>;
let preArchive: string; // a copy of the live file just before the archive: the "crash between the steps" state
let archive: string;
let oldRows: Record<string, string>;
let oldCounts: Record<string, number>;

beforeAll(() => {
  t = tempDb();
  preArchive = path.join(t.dir, "pre.db");
  archive = path.join(t.dir, "history", "archive.db");
  const { orch, inbox } = t.cli;
  ok(orch("run", "init", "--run", OLD, "--goal", "an earlier run, finished"));
  for (const [id, w] of [["A", "wa"], ["B", "wb"], ["C", "wa"]]) ok(orch("task", "add", "--run", OLD, "--task", id!, "--title", `old ${id}`, "--default-to", w!));
  ok(orch("dep", "add", "--run", OLD, "--task", "C", "--depends-on", "A,B"));
  ok(orch("run", "init", "--run", LIVE, "--goal", "the run still going"));
  ok(orch("task", "add", "--run", LIVE, "--task", "X", "--title", "live X", "--default-to", "wx"));
  ok(orch("task", "add", "--run", LIVE, "--task", "Y", "--title", "live Y", "--default-to", "wy"));
  work(t.cli, OLD, "A", "wa", 8);
  work(t.cli, OLD, "B", "wb", 8);
  work(t.cli, OLD, "C", "wa", 8);
  work(t.cli, LIVE, "X", "wx", 2);
  // a free-standing thread (no run) is never archived
  ok(inbox("send", "--to", "wz", "--from", "leader", "--body", "a note outside any run"));
  expect(ok(orch("run", "show", "--run", OLD)).run.status).toBe("done");
  oldRows = rowsOf(t.db, OLD);
  oldCounts = countsOf(t.db, OLD);
  expect(oldCounts).toMatchObject({ tasks: 3, deps: 2, attempts: 3, threads: 3, leases: 3 });
  expect(oldCounts.messages).toBe(30); // per task: the assignment, 8 progress, the result
}, 60_000);

afterAll(() => t?.cleanup());

test("an active run is refused, naming its open tasks; the file is untouched", () => {
  const before = sha256File(t.db);
  const e = fails(t.cli.orch("archive", "--run", LIVE, "--to", archive), "invalid_state");
  expect(e.message).toContain("Y (pending)");
  expect(e.message).not.toContain("X (");
  expect(sha256File(t.db)).toBe(before);
  expect(existsSync(archive)).toBe(false);
});

test("an unknown run is not_found; --to must not be the live database", () => {
  const before = sha256File(t.db);
  fails(t.cli.orch("archive", "--run", "nope", "--to", archive), "not_found");
  fails(t.cli.orch("archive", "--run", OLD, "--to", t.db), "usage");
  fails(t.cli.orch("archive", "--run", OLD), "usage");
  expect(sha256File(t.db)).toBe(before);
  expect(existsSync(archive)).toBe(false);
});

test("--dry-run reports the counts and the size after, and changes nothing", () => {
  const before = sha256File(t.db);
  const r = ok(t.cli.orch("archive", "--run", OLD, "--to", archive, "--dry-run"));
  expect(r).toMatchObject({ run_id: OLD, archive, moved: oldCounts, bytes_before: size(t.db), dry_run: true, archive_created: true });
  expect(r.bytes_after).toBeLessThan(r.bytes_before);
  expect(sha256File(t.db)).toBe(before);
  expect(existsSync(archive)).toBe(false);
});

test("archiving the done run moves every row, shrinks the live file, and the other run keeps working", () => {
  copyFileSync(t.db, preArchive);
  const liveBefore = rowsOf(t.db, LIVE);
  const bytesBefore = size(t.db);
  // the archive's directory must exist (like --db's)
  fails(t.cli.orch("archive", "--run", OLD, "--to", archive), "db_unwritable");
  mkdirSync(path.dirname(archive));

  const r = ok(t.cli.orch("archive", "--run", OLD, "--to", archive));
  expect(r).toMatchObject({ run_id: OLD, archive, moved: oldCounts, bytes_before: bytesBefore, dry_run: false, archive_created: true, already_archived: false });
  expect(r.bytes_after).toBe(size(t.db));
  expect(size(t.db)).toBeLessThan(bytesBefore);
  expect(Number(sqlite3(t.db, "PRAGMA freelist_count"))).toBe(0);

  // gone from the live database, whole in the archive, with the same ids
  fails(t.cli.orch("run", "show", "--run", OLD), "not_found");
  expect(countsOf(t.db, OLD)).toEqual(Object.fromEntries(TABLES.map((x) => [x, 0])));
  expect(rowsOf(archive, OLD)).toEqual(oldRows);
  expect(countsOf(archive, OLD)).toEqual(oldCounts);
  const a = cliFor(archive);
  const st = ok(a.orch("status", "--run", OLD));
  expect(st.run.status).toBe("done");
  expect(st.tasks.map((x: any) => x.status)).toEqual(["done", "done", "done"]);
  const thread = st.tasks[0].attempt.thread_id;
  expect(ok(a.inbox("show", "--thread", String(thread))).messages.length).toBeGreaterThan(5);
  expect(ok(a.orch("run", "list")).runs.map((x: any) => x.id)).toEqual([OLD]);
  expect(integrity(t.db)).toBe("ok");
  expect(integrity(archive)).toBe("ok");

  // the free-standing thread and the other run stay, unchanged
  expect(sqlite3(t.db, "SELECT count(*) FROM threads WHERE run_id IS NULL")).toBe("1");
  expect(sqlite3(archive, "SELECT count(*) FROM threads WHERE run_id IS NULL")).toBe("0");
  expect(rowsOf(t.db, LIVE)).toEqual(liveBefore);
  work(t.cli, LIVE, "Y", "wy", 2);
  expect(ok(t.cli.orch("status", "--run", LIVE)).run.status).toBe("done");
  // new ids continue after the archived ones: references in the archive stay unique
  const maxArchived = Number(sqlite3(archive, "SELECT max(id) FROM messages"));
  expect(Number(sqlite3(t.db, `SELECT min(id) FROM messages WHERE thread_id IN (SELECT id FROM threads WHERE run_id = '${LIVE}' AND task_id = 'Y')`))).toBeGreaterThan(maxArchived);

  // again: the run is already gone, and the error says where it is
  const e = fails(t.cli.orch("archive", "--run", OLD, "--to", archive), "not_found");
  expect(e.message).toContain("already in the archive");
});

test("a repeat after a crash between the two steps finishes the move without duplicates", () => {
  // the crash state: the archive holds the run, and the live file still has it too
  const crashed = path.join(t.dir, "crashed.db");
  copyFileSync(preArchive, crashed);
  const archiveBefore = sha256File(archive);
  const c = cliFor(crashed);
  const r = ok(c.orch("archive", "--run", OLD, "--to", archive));
  expect(r).toMatchObject({ moved: oldCounts, archive_created: false, already_archived: true });
  expect(sha256File(archive)).toBe(archiveBefore); // identical: the archive was not rewritten
  expect(countsOf(crashed, OLD)).toEqual(Object.fromEntries(TABLES.map((x) => [x, 0])));
  expect(countsOf(archive, OLD)).toEqual(oldCounts);

  // the run changed in the live file after the interrupted archive: the archive copy is replaced, not duplicated
  const crashed2 = path.join(t.dir, "crashed2.db");
  copyFileSync(preArchive, crashed2);
  const c2 = cliFor(crashed2);
  ok(c2.inbox("send", "--thread", "1", "--from", "leader", "--body", "a late note on a finished thread"));
  const r2 = ok(c2.orch("archive", "--run", OLD, "--to", archive));
  expect(r2).toMatchObject({ already_archived: false, moved: { ...oldCounts, messages: oldCounts.messages! + 1 } });
  expect(countsOf(archive, OLD)).toEqual({ ...oldCounts, messages: oldCounts.messages! + 1 });
  expect(sqlite3(archive, "SELECT count(*) FROM runs")).toBe("1");
  expect(sqlite3(archive, "SELECT body FROM messages ORDER BY id DESC LIMIT 1")).toBe("a late note on a finished thread");
  expect(integrity(archive)).toBe("ok");
  expect(integrity(crashed2)).toBe("ok");
});

test("a different run of the same id, or rows of another database under the same ids, is a conflict; a cancelled run archives", () => {
  const other = tempDb();
  try {
    const { orch, inbox } = other.cli;
    ok(orch("run", "init", "--run", OLD, "--goal", "another run that happens to share the id"));
    ok(orch("cancel", "--run", OLD));
    ok(orch("run", "init", "--run", "fresh", "--goal", "a run of another database"));
    ok(orch("task", "add", "--run", "fresh", "--task", "T", "--title", "t", "--default-to", "w"));
    ok(orch("dispatch", "--run", "fresh", "--task", "T", "--execution-mode", "analysis"));
    ok(inbox("claim", "--as", "w"));
    ok(orch("cancel", "--run", "fresh"));
    const before = [sha256File(archive), sha256File(other.db)];

    const e1 = fails(orch("archive", "--run", OLD, "--to", archive), "conflict");
    expect(e1.message).toContain("different run");
    const e2 = fails(orch("archive", "--run", "fresh", "--to", archive), "conflict");
    expect(e2.message).toMatch(/thread ids 1\b/);
    expect([sha256File(archive), sha256File(other.db)]).toEqual(before);

    // a cancelled run (its worker's lease ended by the cancel) archives into its own file
    const own = path.join(other.dir, "own-archive.db");
    const r = ok(orch("archive", "--run", "fresh", "--to", own));
    expect(r.moved).toMatchObject({ tasks: 1, attempts: 1, threads: 1, leases: 1 });
    expect(ok(cliFor(own).orch("status", "--run", "fresh")).run.status).toBe("cancelled");
    fails(orch("run", "show", "--run", "fresh"), "not_found");
    expect(integrity(own)).toBe("ok");
    expect(integrity(other.db)).toBe("ok");
  } finally {
    other.cleanup();
  }
});

test("--help documents the output, the errors and an example", () => {
  const r = run(["archive", "--help"]);
  expect(r.code).toBe(0);
  for (const s of ["--run", "--to", "--dry-run", "Output (--json)", "Errors:", "Example:", "orch cleanup", "bytes_after"]) expect(r.stdout).toContain(s);
});
