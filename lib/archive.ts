/**
 * `orch archive`: move a finished run, with every row that belongs to it, out
 * of the live database into an archive database, then compact the live file.
 *
 * Every write reads, exports and fsyncs the whole file, so a live database
 * that keeps the history of old runs makes every command slower; the archive
 * keeps that history in an ordinary orch database (`orch --db ARCHIVE status`
 * works on it).
 *
 * History is never lost: the archive is written first (its own atomic write
 * under its own lock), and only then are the rows deleted from the live file
 * (one write transaction, then VACUUM). A crash between the two leaves the run
 * in both files; running archive again finds the same run in the archive,
 * replaces it there (or leaves it, when identical) and finishes the delete.
 *
 * Rows keep their ids (threads, messages, attempts, events, lease tokens), so
 * every reference between them stays valid. The live database never reuses an
 * id (AUTOINCREMENT), so runs archived from one live database never collide;
 * an archive that already holds rows with the same ids for another run (it was
 * filled from another live database) is refused rather than renumbered.
 */
import * as rt from "./_runtime.ts";
import type { Db, Row } from "./sqlite.ts";
import { OrchError } from "./errors.ts";
import { initDatabase, readSnapshot, type StoreOptions, writeTransaction } from "./storage.ts";
import { findRun } from "./runs.ts";
import { reconcileRun } from "./reconcile.ts";

export interface ArchiveInput {
  run: string;
  /** The archive database; created with the current schema if missing. */
  to: string;
  dryRun?: boolean;
}

export interface MovedCounts {
  tasks: number;
  deps: number;
  attempts: number;
  threads: number;
  messages: number;
  leases: number;
  events: number;
}

export interface ArchiveResult {
  run_id: string;
  /** Absolute path of the archive database. */
  archive: string;
  moved: MovedCounts;
  /** Size of the live database before, and after (with --dry-run: what it would be). */
  bytes_before: number;
  bytes_after: number;
  dry_run: boolean;
  /** True if this call created the archive file (with --dry-run: would create). */
  archive_created: boolean;
  /** True if the archive already held this run, identical (a re-run after an interrupted archive). */
  already_archived: boolean;
}

/** One run's rows, table by table, in a fixed order (so two copies compare equal as JSON). */
interface RunRows {
  runs: Row[];
  tasks: Row[];
  deps: Row[];
  attempts: Row[];
  threads: Row[];
  messages: Row[];
  leases: Row[];
  events: Row[];
}

const RUN_THREADS = "SELECT id FROM threads WHERE run_id = ?";

/** Parents before children, so inserts satisfy the REFERENCES clauses (messages -> threads, tasks -> runs). */
const SELECTS: Record<keyof RunRows, string> = {
  runs: "SELECT * FROM runs WHERE id = ?",
  tasks: "SELECT * FROM tasks WHERE run_id = ? ORDER BY id",
  deps: "SELECT * FROM deps WHERE run_id = ? ORDER BY task_id, depends_on",
  attempts: "SELECT * FROM attempts WHERE run_id = ? ORDER BY id",
  threads: "SELECT * FROM threads WHERE run_id = ? ORDER BY id",
  messages: `SELECT * FROM messages WHERE thread_id IN (${RUN_THREADS}) ORDER BY id`,
  leases: `SELECT * FROM leases WHERE thread_id IN (${RUN_THREADS}) ORDER BY token`,
  events: "SELECT * FROM events WHERE run_id = ? ORDER BY id",
};

/** Children before parents; free-standing threads (run_id NULL) are never touched. */
const DELETES: [keyof MovedCounts | "runs", string][] = [
  ["messages", `DELETE FROM messages WHERE thread_id IN (${RUN_THREADS})`],
  ["leases", `DELETE FROM leases WHERE thread_id IN (${RUN_THREADS})`],
  ["events", "DELETE FROM events WHERE run_id = ?"],
  ["attempts", "DELETE FROM attempts WHERE run_id = ?"],
  ["deps", "DELETE FROM deps WHERE run_id = ?"],
  ["tasks", "DELETE FROM tasks WHERE run_id = ?"],
  ["threads", "DELETE FROM threads WHERE run_id = ?"],
  ["runs", "DELETE FROM runs WHERE id = ?"],
];

function runRows(db: Db, runId: string): RunRows {
  const out = {} as RunRows;
  for (const table of Object.keys(SELECTS) as (keyof RunRows)[]) out[table] = db.all(SELECTS[table], [runId]);
  return out;
}

function countsOf(rows: RunRows): MovedCounts {
  const { tasks, deps, attempts, threads, messages, leases, events } = rows;
  return {
    tasks: tasks.length,
    deps: deps.length,
    attempts: attempts.length,
    threads: threads.length,
    messages: messages.length,
    leases: leases.length,
    events: events.length,
  };
}

function sameRows(a: RunRows, b: RunRows): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function deleteRun(db: Db, runId: string): MovedCounts {
  const n: Record<string, number> = {};
  for (const [table, sql] of DELETES) n[table] = db.run(sql, [runId]);
  return { tasks: n.tasks!, deps: n.deps!, attempts: n.attempts!, threads: n.threads!, messages: n.messages!, leases: n.leases!, events: n.events! };
}

function insertRows(db: Db, rows: RunRows): void {
  for (const table of Object.keys(SELECTS) as (keyof RunRows)[]) {
    for (const row of rows[table]) {
      const cols = Object.keys(row);
      // column names come from the schema (SELECT *), never from input; values are bound
      db.run(`INSERT INTO ${table} (${cols.map((c) => `"${c}"`).join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`, Object.values(row));
    }
  }
}

/** A finished run has nothing left that could still write to it; anything else is refused, naming what is open. */
function assertFinished(db: Db, runId: string, dbPath: string): void {
  const run = findRun(db, runId)!;
  if (run.status === "active") {
    reconcileRun(db, runId); // a private snapshot: this only makes the statuses named below current
    const open = db.all<{ id: string; status: string }>("SELECT id, status FROM tasks WHERE run_id = ? AND status NOT IN ('done','cancelled') ORDER BY seq", [runId]);
    const what = open.length === 0 ? "it has no tasks yet" : `${open.length} task(s) still open: ${list(open.map((t) => `${t.id} (${t.status})`))}`;
    throw new OrchError("invalid_state", `run ${runId} is active, so it cannot be archived: ${what}`, {
      hint: `only a done or cancelled run is archived: finish its tasks, or cancel it with \`orch --db ${dbPath} cancel --run ${runId}\``,
    });
  }
  const attempts = db.all<{ id: number; task_id: string; status: string }>(
    "SELECT id, task_id, status FROM attempts WHERE run_id = ? AND status IN ('dispatched','running','blocked') ORDER BY id",
    [runId],
  );
  const leases = db.all<{ token: string; thread_id: number; worker: string }>(
    `SELECT token, thread_id, worker FROM leases WHERE ended_at IS NULL AND thread_id IN (${RUN_THREADS}) ORDER BY thread_id`,
    [runId],
  );
  if (attempts.length > 0 || leases.length > 0) {
    const parts = [
      ...attempts.map((a) => `attempt ${a.id} of ${a.task_id} (${a.status})`),
      ...leases.map((l) => `a lease of ${l.worker} on thread ${l.thread_id}`),
    ];
    throw new OrchError("invalid_state", `run ${runId} is ${run.status} but still has ${list(parts)} open`, {
      hint: `run \`orch --db ${dbPath} reconcile --run ${runId}\`, then archive again`,
    });
  }
}

function list(items: readonly string[], max = 10): string {
  return items.length <= max ? items.join(", ") : `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}

/**
 * Refuses to put the run into an archive that holds a different run of the
 * same id, or rows of other runs under the ids this run's rows keep. Returns
 * "identical" when the archive already holds exactly these rows.
 */
function checkArchive(adb: Db, rows: RunRows, runId: string, archivePath: string): "absent" | "identical" | "replace" {
  const live = rows.runs[0]!;
  const existing = adb.get<{ goal: string; created_at: number }>("SELECT goal, created_at FROM runs WHERE id = ?", [runId]);
  if (existing && (existing.goal !== live.goal || existing.created_at !== live.created_at)) {
    throw new OrchError(
      "conflict",
      `the archive ${archivePath} already holds a different run ${runId} (created ${new Date(existing.created_at).toISOString()}, goal ${JSON.stringify(existing.goal)})`,
      { hint: "archive into another file (--to), or look at the archived run with `orch --db ARCHIVE run show`" },
    );
  }
  // Rows of other runs (or free-standing threads) under the ids this run keeps.
  const clashes: string[] = [];
  const check = (what: string, sql: string, keys: readonly unknown[]) => {
    const hit = keys.filter((k) => adb.get(sql, [k as number | string, runId]) !== undefined);
    if (hit.length > 0) clashes.push(`${what} ${list(hit.map(String), 5)}`);
  };
  check("thread ids", "SELECT 1 FROM threads WHERE id = ? AND run_id IS NOT ?", rows.threads.map((r) => r.id));
  check("attempt ids", "SELECT 1 FROM attempts WHERE id = ? AND run_id IS NOT ?", rows.attempts.map((r) => r.id));
  check("event ids", "SELECT 1 FROM events WHERE id = ? AND run_id IS NOT ?", rows.events.map((r) => r.id));
  check(
    "message ids",
    "SELECT 1 FROM messages m LEFT JOIN threads t ON t.id = m.thread_id WHERE m.id = ? AND t.run_id IS NOT ?",
    rows.messages.map((r) => r.id),
  );
  check(
    "lease tokens",
    "SELECT 1 FROM leases l LEFT JOIN threads t ON t.id = l.thread_id WHERE l.token = ? AND t.run_id IS NOT ?",
    rows.leases.map((r) => r.token),
  );
  if (clashes.length > 0) {
    throw new OrchError(
      "conflict",
      `the archive ${archivePath} already holds rows of other runs with the ids run ${runId} keeps (${clashes.join("; ")}); it was probably filled from another live database`,
      { hint: "archive into a separate file per live database (--to); ids are kept as they are so references stay valid" },
    );
  }
  if (!existing) return "absent";
  return sameRows(runRows(adb, runId), rows) ? "identical" : "replace";
}

function resolvePath(p: string): string {
  const abs = rt.path.resolve(rt.cwd(), p);
  try {
    return rt.realpath(abs);
  } catch {
    return abs;
  }
}

function sizeOf(p: string): number {
  return rt.statOrNull(p)?.size ?? 0;
}

/** Moves a done or cancelled run into the archive database, then deletes and compacts it in the live one. */
export async function archiveRun(dbPath: string, input: ArchiveInput, store: StoreOptions = {}): Promise<ArchiveResult> {
  const live = resolvePath(dbPath);
  const archive = resolvePath(input.to);
  if (archive === live) {
    throw new OrchError("usage", `--to ${input.to} is the live database itself`, { hint: "give --to the path of a separate archive file, e.g. ./archive.db" });
  }
  const bytesBefore = sizeOf(live);
  // The run may change between reading it and deleting it (e.g. `cleanup` records a
  // worktree removal); the delete re-reads it and, if it changed, the copy is redone.
  for (let round = 0; round < 3; round++) {
    // a dry run deletes the run from this snapshot to measure the result: it must be a private copy
    const snapshot = await readSnapshot(live, { private: Boolean(input.dryRun) });
    let rows: RunRows;
    try {
      if (!findRun(snapshot, input.run)) throw await notFound(input.run, live, archive);
      assertFinished(snapshot, input.run, live);
      rows = runRows(snapshot, input.run);
      if (input.dryRun) return await dryRun(snapshot, rows, input.run, archive, bytesBefore);
    } finally {
      snapshot.close();
    }

    const { created } = await initDatabase(archive, store);
    const state = await writeTransaction(archive, (adb) => {
      const s = checkArchive(adb, rows, input.run, archive);
      if (s === "replace") deleteRun(adb, input.run);
      if (s !== "identical") insertRows(adb, rows);
      return s;
    }, store);

    const moved = await writeTransaction(live, (db) => {
      if (!findRun(db, input.run)) return "gone" as const;
      if (!sameRows(runRows(db, input.run), rows)) return "changed" as const;
      return deleteRun(db, input.run);
    }, { ...store, compact: true });
    if (moved === "gone") throw await notFound(input.run, live, archive);
    if (moved === "changed") continue;
    return {
      run_id: input.run,
      archive,
      moved,
      bytes_before: bytesBefore,
      bytes_after: sizeOf(live),
      dry_run: false,
      archive_created: created,
      already_archived: state === "identical",
    };
  }
  throw new OrchError("busy", `run ${input.run} kept changing while it was being archived; it is in the archive and still in the live database`, {
    hint: "run the same archive command again once nothing writes to the run (it is safe to repeat)",
  });
}

async function notFound(runId: string, live: string, archive: string): Promise<OrchError> {
  let archived = false;
  if (rt.statOrNull(archive)?.isFile()) {
    try {
      const adb = await readSnapshot(archive);
      try {
        archived = findRun(adb, runId) !== undefined;
      } finally {
        adb.close();
      }
    } catch {
      // an unreadable archive says nothing about the run; the plain error stands
    }
  }
  return new OrchError("not_found", `run ${runId} does not exist in ${live}${archived ? ` (it is already in the archive ${archive})` : ""}`, {
    hint: archived ? `read it with \`orch --db ${archive} run show --run ${runId}\`` : "list runs with `orch run list`",
  });
}

/** Checks the archive (if it exists) as a real run would, and measures the compacted size on the private snapshot. */
async function dryRun(snapshot: Db, rows: RunRows, runId: string, archive: string, bytesBefore: number): Promise<ArchiveResult> {
  const exists = rt.statOrNull(archive) !== null;
  let state = "absent";
  if (exists) {
    const adb = await readSnapshot(archive);
    try {
      state = checkArchive(adb, rows, runId, archive);
    } finally {
      adb.close();
    }
  }
  snapshot.exec("BEGIN");
  deleteRun(snapshot, runId);
  snapshot.exec("COMMIT");
  snapshot.exec("VACUUM");
  return {
    run_id: runId,
    archive,
    moved: countsOf(rows),
    bytes_before: bytesBefore,
    bytes_after: snapshot.export().length,
    dry_run: true,
    archive_created: !exists,
    already_archived: state === "identical",
  };
}
