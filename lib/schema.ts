/**
 * The database schema and its ordered migrations, versioned with
 * `PRAGMA user_version`. A newer tool migrates an older file on its next
 * write; an older tool refuses a newer file.
 */
import type { Db } from "./sqlite.ts";
import { OrchError } from "./errors.ts";

/** Each entry migrates from version (index) to version (index + 1). */
const MIGRATIONS: readonly string[] = [
  // 0 -> 1: the whole model.
  `
  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    goal TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE tasks (
    run_id TEXT NOT NULL REFERENCES runs(id),
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    default_to TEXT,
    acceptance_json TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    status_reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, id)
  );
  CREATE INDEX tasks_by_status ON tasks(run_id, status);
  CREATE TABLE deps (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, task_id, depends_on)
  );
  CREATE INDEX deps_by_target ON deps(run_id, depends_on);
  CREATE TABLE threads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT,
    task_id TEXT,
    attempt_id INTEGER,
    subject TEXT NOT NULL DEFAULT '',
    assigned_to TEXT,
    created_by TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    lease_token TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX threads_by_assignee ON threads(assigned_to, status, id);
  CREATE TABLE leases (
    token TEXT PRIMARY KEY,
    thread_id INTEGER NOT NULL,
    worker TEXT NOT NULL,
    seconds INTEGER NOT NULL,
    claimed_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at INTEGER,
    end_reason TEXT
  );
  CREATE INDEX leases_by_thread ON leases(thread_id);
  CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id INTEGER NOT NULL REFERENCES threads(id),
    kind TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT,
    body TEXT NOT NULL,
    payload_json TEXT,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX messages_by_thread ON messages(thread_id, id);
  CREATE INDEX messages_by_recipient ON messages(recipient, id);
  CREATE TABLE attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    worker TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    thread_id INTEGER NOT NULL,
    end_reason TEXT,
    created_at INTEGER NOT NULL,
    claimed_at INTEGER,
    ended_at INTEGER,
    repo_path TEXT,
    base_ref TEXT,
    base_commit TEXT,
    branch TEXT,
    worktree_path TEXT,
    worktree_removed_at INTEGER,
    UNIQUE (run_id, task_id, number)
  );
  CREATE INDEX attempts_by_status ON attempts(run_id, status);
  CREATE INDEX attempts_by_thread ON attempts(thread_id);
  CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    type TEXT NOT NULL,
    task_id TEXT,
    attempt_id INTEGER,
    thread_id INTEGER,
    message_id INTEGER,
    actor TEXT,
    data_json TEXT,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX events_by_run ON events(run_id, id);
  `,
  // 1 -> 2: the latest decisive message of a thread in one index seek. Reconcile asks for it for
  // every active attempt on every status, ready and wait; without it SQLite walks the whole thread.
  // Partial (decisive kinds only), so progress messages cost it nothing. The WHERE must stay
  // textually equal to the query's kind list in reconcile.ts, or SQLite will not use the index.
  `
  CREATE INDEX messages_decisive ON messages(thread_id, id) WHERE kind IN ('question','answer','result','failure','cancel');
  `,
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

export function schemaVersion(db: Db): number {
  return Number(db.value("PRAGMA user_version"));
}

/**
 * Brings a database up to SCHEMA_VERSION inside the caller's transaction.
 * Returns true if anything was migrated. Refuses files from a newer orch.
 */
export function migrate(db: Db, dbPath: string): boolean {
  const version = schemaVersion(db);
  assertNotTooNew(version, dbPath);
  if (version === 0 && Number(db.value("SELECT count(*) FROM sqlite_master")) > 0) {
    throw new OrchError("db_invalid", `${dbPath} is a SQLite database, but not an orch database (it has tables and no orch schema version)`, {
      hint: "point --db at an orch database, or at a new path and run `inbox init`",
    });
  }
  for (let v = version; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
  if (version !== SCHEMA_VERSION) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  return version !== SCHEMA_VERSION;
}

export function assertNotTooNew(version: number, dbPath: string): void {
  if (version < 0) {
    // no orch ever writes a negative version: someone else's file, or a damaged one
    throw new OrchError("db_invalid", `${dbPath} has schema version ${version}, which no orch database has`, {
      hint: "point --db at an orch database, or at a new path and run `inbox init`",
    });
  }
  if (version > SCHEMA_VERSION) {
    throw new OrchError(
      "db_too_new",
      `${dbPath} has schema version ${version}, but this orch understands up to version ${SCHEMA_VERSION}`,
      { hint: "upgrade orch to a newer version to use this database" },
    );
  }
}
