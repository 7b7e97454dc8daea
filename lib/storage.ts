/**
 * The storage engine. A database is one SQLite file shared by every process.
 *
 * - Reads take no lock. Writers replace the file by atomic rename and never
 *   change it in place, so a reader sees the old or the new state, never a mix.
 *   sql.js reads the whole file into memory; Bun's SQLite (lib/sqlite.ts) opens
 *   it read-only and reads only the pages a query needs.
 * - A write is one transaction under the exclusive lockfile on a working copy
 *   beside the database: sql.js changes the very buffer the file was read into
 *   and writes it to a temporary file; Bun's SQLite copies the file to the
 *   temporary file and changes that. Then: fsync, re-check the lock (fence),
 *   rename over the database, fsync the directory. A crash at any instant
 *   leaves the old or the new file; a leftover temporary file is removed by
 *   the next writer.
 */
import * as rt from "./_runtime.ts";
import { Db, type FileImage, fileBindingAvailable, openBytes, openFile, openImage, sqlEngine } from "./sqlite.ts";
import { acquireLock, DEFAULT_LOCK_STALE_MS, DEFAULT_LOCK_TIMEOUT_MS, type LockOptions, removeLockLeftovers } from "./lock.ts";
import { assertNotTooNew, migrate, SCHEMA_VERSION, schemaVersion } from "./schema.ts";
import { OrchError } from "./errors.ts";

export interface StoreOptions extends Partial<LockOptions> {
  /** Told how long each phase of a write took, in ms (the CLI prints them with ORCH_DEBUG_TIMING=1). */
  onTiming?: (phase: WritePhase, ms: number) => void;
  /**
   * After a transaction that changed something, run VACUUM before exporting so
   * the written file drops its free pages (`orch archive` uses it after a large
   * delete). VACUUM cannot run inside the transaction, hence an option rather
   * than something `fn` could do. Off by default: it rewrites every page.
   */
  compact?: boolean;
}

export type WritePhase = "lock_wait" | "load" | "apply" | "export" | "flush";

function lockOptions(options: StoreOptions): LockOptions {
  return {
    timeoutMs: options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
    staleMs: options.staleMs ?? DEFAULT_LOCK_STALE_MS,
    onWarning: options.onWarning,
  };
}

const SQLITE_MAGIC = "SQLite format 3\u0000";

/** Cheap structural checks that catch foreign and truncated files before SQLite sees them. `bytes` starts with the file's first 100 bytes. */
function checkHeader(bytes: Uint8Array, fileSize: number, dbPath: string): void {
  const notSqlite = () =>
    new OrchError("db_invalid", `${dbPath} is not a SQLite database`, {
      hint: "point --db at an orch database, or at a new path and run `inbox init`",
    });
  if (fileSize < 100 || bytes.length < 100) throw notSqlite();
  for (let i = 0; i < SQLITE_MAGIC.length; i++) if (bytes[i] !== SQLITE_MAGIC.charCodeAt(i)) throw notSqlite();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rawPageSize = view.getUint16(16);
  const pageSize = rawPageSize === 1 ? 65536 : rawPageSize;
  const changeCounter = view.getUint32(24);
  const pageCount = view.getUint32(28);
  const validFor = view.getUint32(92);
  if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0) throw notSqlite();
  // The in-header page count is trustworthy when "version-valid-for" matches the change counter.
  if (validFor === changeCounter && pageCount > 0 && pageCount * pageSize !== fileSize) {
    throw new OrchError(
      "db_invalid",
      `${dbPath} is damaged: its header says ${pageCount * pageSize} bytes but the file has ${fileSize}`,
      { hint: "restore the database from a backup; orch never writes a file in place, so this came from outside" },
    );
  }
}

/**
 * The file a database path stands for. A symlinked database is written through
 * to its target: renaming over the link itself would split the database in
 * two (processes using the target would never see writes made via the link),
 * and the lock must sit beside the one real file.
 */
function realDbPath(dbPath: string): string {
  try {
    return rt.realpath(dbPath);
  } catch {
    return dbPath; // not there (yet): callers report it
  }
}

/** Refuses a missing database or a directory without reading it. */
function assertDbFile(dbPath: string): void {
  const st = rt.statOrNull(dbPath);
  if (!st) {
    throw new OrchError("db_missing", `no database at ${dbPath}`, {
      hint: `create it first: inbox --db ${dbPath} init`,
    });
  }
  if (st.isDirectory()) {
    throw new OrchError("db_invalid", `${dbPath} is a directory, not a database file`, {
      hint: "give --db the path of a file, e.g. ./coord.db",
    });
  }
  if (!st.isFile()) {
    // a FIFO or device would block the read forever, or never hold a database
    throw new OrchError("db_invalid", `${dbPath} is not a regular file`, {
      hint: "give --db the path of a database file, e.g. ./coord.db",
    });
  }
}

/**
 * Room a writer leaves after the file's bytes so SQLite can grow the file in
 * place (see openImage). It is only address space until a transaction writes
 * there; a transaction that grows the file by more falls back to export().
 */
const WRITE_ROOM = 16 << 20;

function readDbFile(dbPath: string, room = 0): FileImage {
  assertDbFile(dbPath);
  const image = rt.readFileWithRoom(dbPath, room);
  checkHeader(image.buffer, image.length, dbPath);
  return image;
}

/** The checks readDbFile makes, for a file SQLite will open itself. */
function checkDbFile(dbPath: string): void {
  assertDbFile(dbPath);
  const { buffer, length } = rt.readFileHead(dbPath, 100);
  checkHeader(buffer, length, dbPath);
}

async function opened(dbPath: string, open: () => Promise<Db>): Promise<Db> {
  let db: Db | undefined;
  try {
    db = await open();
    db.value("SELECT count(*) FROM sqlite_master");
    return db;
  } catch (err) {
    db?.close();
    if (err instanceof OrchError) throw err;
    throw new OrchError("db_invalid", `${dbPath} could not be read as SQLite: ${(err as Error).message}`, { cause: err });
  }
}

/** sql.js over an image of the file. */
function load(image: FileImage, dbPath: string): Promise<Db> {
  return opened(dbPath, () => openImage(image));
}

/** A version-0 file: an empty one wants `init`; one with tables belongs to someone else. */
function notInitialised(db: Db, dbPath: string): OrchError {
  if (Number(db.value("SELECT count(*) FROM sqlite_master")) > 0) {
    return new OrchError("db_invalid", `${dbPath} is a SQLite database, but not an orch database (it has tables and no orch schema version)`, {
      hint: "point --db at an orch database, or at a new path and run `inbox init`",
    });
  }
  return new OrchError("db_invalid", `${dbPath} is not an initialised orch database`, {
    hint: `initialise it: inbox --db ${dbPath} init`,
  });
}

/**
 * Opens a lock-free snapshot for reading. The caller must close() the handle.
 * With Bun's SQLite it is the file itself, read-only; `private: true` asks
 * for a private in-memory copy the caller may change (nothing is written
 * back). An older schema is migrated in such a private copy only.
 */
export async function readSnapshot(dbPath: string, options: { private?: boolean } = {}): Promise<Db> {
  dbPath = realDbPath(dbPath);
  // Windows refuses to rename over a file SQLite holds open, so there a reader takes a private copy
  const onFile = !options.private && !rt.isWindows && (await fileBindingAvailable());
  const db = onFile
    ? await opened(dbPath, () => (checkDbFile(dbPath), openFile(dbPath, "read")))
    : await load(readDbFile(dbPath), dbPath);
  try {
    const version = schemaVersion(db);
    assertNotTooNew(version, dbPath);
    if (version === 0) throw notInitialised(db, dbPath);
    if (version < SCHEMA_VERSION) {
      if (onFile) {
        db.close();
        return await readSnapshot(dbPath, { private: true });
      }
      migrate(db, dbPath);
    }
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

const tempPathFor = (dbPath: string): string => `${dbPath}.tmp-${rt.pid}-${rt.randomToken(4)}`;

/**
 * Finishes the temporary file `tmp` beside the database (`fill` must leave it
 * complete and fsynced), checks its size, runs `beforeRename` (the fence) and
 * renames it into place. On any failure the temporary file is removed.
 */
function replaceFile(dbPath: string, tmp: string, fill: () => void, size: number, beforeRename: () => void): void {
  try {
    fill();
    // never rename a short file into place, whatever the file system claimed
    const written = rt.statOrNull(tmp)?.size;
    if (written !== size) throw new Error(`the temporary file ${tmp} has ${written} bytes, expected ${size}`);
    beforeRename();
    renameWithRetry(tmp, dbPath);
  } catch (err) {
    // Our temp file vanished: a writer that broke our lock removed it (removeLeftovers), so the fence holds.
    if (rt.errno(err) === "ENOENT" && !rt.exists(tmp)) throw lockLost(dbPath);
    rt.unlinkQuiet(tmp);
    throw writeError(err, dbPath);
  }
  rt.fsyncDir(rt.path.dirname(dbPath));
}

/** The OrchError for a failure to write the database's directory, or the error itself. */
function writeError(err: unknown, dbPath: string): unknown {
  if (["EACCES", "EPERM", "EROFS"].includes(rt.errno(err) ?? "")) {
    return new OrchError("db_unwritable", `cannot write the database ${dbPath}: ${(err as Error).message}`, {
      hint: "orch needs write access to the database's directory (it writes a temporary file there and renames it)",
      cause: err,
    });
  }
  // a built-in SQLite that ran out of room growing the working copy: Bun says SQLITE_FULL, Deno only says so in words
  const full = rt.errno(err) === "SQLITE_FULL" || /database or disk is full/.test((err as Error)?.message ?? "");
  if (["ENOSPC", "EDQUOT"].includes(rt.errno(err) ?? "") || full) {
    return new OrchError("db_unwritable", `cannot write the database ${dbPath}: the disk is full (${(err as Error).message})`, {
      hint: "free some space on that file system; the database was left as it was",
      cause: err,
    });
  }
  return err;
}

/** Windows refuses to rename over a file another process has open; that passes quickly. */
function renameWithRetry(from: string, to: string): void {
  const deadline = rt.now() + 2000;
  for (;;) {
    try {
      rt.rename(from, to);
      return;
    } catch (err) {
      const retryable = rt.isWindows && ["EPERM", "EBUSY", "EACCES"].includes(rt.errno(err) ?? "");
      if (!retryable || rt.now() > deadline) throw err;
      pauseSync(10); // we hold the lock and must not yield mid-write
    }
  }
}

function lockLost(dbPath: string): OrchError {
  return new OrchError("lock_lost", `the write lock on ${dbPath} was taken over while this command held it (it was paused past the stale threshold); nothing was written`, {
    hint: "run the command again",
  });
}

/**
 * Runs with the lock held, before loading. Only the lock holder writes temp
 * files, so any temp file now belongs to a writer that died or lost its lock;
 * removing it also stops a writer that lost its lock after its fence check
 * from renaming a stale state into place. Lock side files of dead processes go too.
 */
function removeLeftovers(dbPath: string): void {
  const dir = rt.path.dirname(dbPath);
  const prefix = `${rt.path.basename(dbPath)}.tmp-`;
  for (const name of rt.readdir(dir)) if (name.startsWith(prefix)) rt.unlinkQuiet(rt.path.join(dir, name));
  removeLockLeftovers(dbPath);
}

function assertDirWritable(dbPath: string): void {
  const dir = rt.path.dirname(dbPath);
  const st = rt.statOrNull(dir);
  if (!st || !st.isDirectory()) {
    throw new OrchError("db_unwritable", `the directory for ${dbPath} does not exist`, { hint: `create ${dir} first` });
  }
}

async function lockFor(dbPath: string, options: StoreOptions) {
  assertDirWritable(dbPath);
  try {
    return await acquireLock(dbPath, lockOptions(options));
  } catch (err) {
    if (["EACCES", "EPERM", "EROFS"].includes(rt.errno(err) ?? "")) {
      throw new OrchError("db_unwritable", `cannot create the lock file beside ${dbPath}: ${(err as Error).message}`, {
        hint: "orch needs write access to the database's directory",
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * Runs `fn` as one transaction under the write lock and persists the result
 * atomically. If `fn` throws, nothing is written. If it changes nothing, the
 * file is not rewritten.
 */
export async function writeTransaction<T>(dbPath: string, fn: (db: Db) => T, options: StoreOptions = {}): Promise<T> {
  dbPath = realDbPath(dbPath);
  const onFile = await fileBindingAvailable();
  // compile sql.js while waiting for the lock, not while holding it (other writers queue behind us)
  const engine = onFile ? undefined : sqlEngine();
  engine?.catch(() => undefined); // awaited below; this only keeps an early lock failure from leaving it unhandled
  const phase = phaseTimer(options);
  assertDbFile(dbPath); // fail fast, without touching the directory
  const lock = await lockFor(dbPath, options);
  phase("lock_wait");
  try {
    await engine;
    removeLeftovers(dbPath);
    const copy = await workingCopy(dbPath, true, onFile);
    phase("load");
    try {
      if (schemaVersion(copy.db) === 0) throw notInitialised(copy.db, dbPath);
      const result = runInTransaction(copy.db, dbPath, fn);
      if (result.changed && options.compact) copy.db.exec("VACUUM");
      phase("apply");
      if (result.changed) {
        testHold("before_write");
        copy.persist(Boolean(options.compact), () => {
          lock.verify();
          testHold("after_fence");
        }, phase);
      }
      return result.value;
    } catch (err) {
      throw writeError(err, dbPath);
    } finally {
      copy.discard();
    }
  } finally {
    lock.release();
  }
}

/** A private copy of the database that one write transaction changes, then puts in place of the database. */
interface WorkingCopy {
  db: Db;
  /** Writes the copy durably beside the database and renames it over it; `fence` runs right before the rename. */
  persist(compacted: boolean, fence: () => void, phase?: (name: WritePhase) => void): void;
  /** Closes the copy and removes what is left of it (after persist, nothing is). */
  discard(): void;
}

/** A working copy for the binding in use (see the module comment); `exists: false` starts an empty database. */
async function workingCopy(dbPath: string, exists: boolean, onFile: boolean): Promise<WorkingCopy> {
  return onFile ? await fileCopy(dbPath, exists) : await imageCopy(dbPath, exists);
}

/** sql.js: the file read into memory; persisting writes the changed image to a temporary file. */
async function imageCopy(dbPath: string, exists: boolean): Promise<WorkingCopy> {
  const db = exists ? await load(readDbFile(dbPath, WRITE_ROOM), dbPath) : await openBytes();
  return {
    db,
    persist(compacted, fence, phase) {
      // after VACUUM the file was rebuilt, not changed in place: export it
      const bytes = compacted ? db.export() : db.fileBytes();
      phase?.("export");
      const tmp = tempPathFor(dbPath);
      replaceFile(dbPath, tmp, () => rt.writeFileDurable(tmp, bytes, true), bytes.length, fence);
      phase?.("flush");
    },
    discard: () => db.close(),
  };
}

/** Bun's SQLite: the file copied to a temporary file, which SQLite changes and persisting renames into place. */
async function fileCopy(dbPath: string, exists: boolean): Promise<WorkingCopy> {
  const tmp = tempPathFor(dbPath);
  try {
    if (exists) {
      checkDbFile(dbPath);
      rt.copyFileExclusive(dbPath, tmp);
      rt.makeOwnerWritable(tmp); // a copy keeps the source's mode; sql.js's new file would be writable too
    }
  } catch (err) {
    rt.unlinkQuiet(tmp);
    throw writeError(err, dbPath);
  }
  let db: Db;
  try {
    // an existing copy must still be there (a writer that broke our lock may have removed it): never create it empty
    db = await opened(dbPath, () => openFile(tmp, exists ? "write" : "create"));
  } catch (err) {
    if (exists && !rt.exists(tmp)) throw lockLost(dbPath);
    rt.unlinkQuiet(tmp);
    throw err;
  }
  let done = false;
  return {
    db,
    persist(_compacted, fence, phase) {
      const size = db.fileSize();
      db.close(); // SQLite has written every page; storage makes them durable
      phase?.("export");
      replaceFile(dbPath, tmp, () => rt.fsyncFile(tmp), size, fence);
      done = true;
      phase?.("flush");
    },
    discard() {
      db.close();
      if (!done) rt.unlinkQuiet(tmp);
    },
  };
}

/** Reports the time since the previous phase ended (or since the write began). */
function phaseTimer(options: StoreOptions): (name: WritePhase) => void {
  const report = options.onTiming;
  if (!report) return () => {};
  let last = performance.now();
  return (name) => {
    const now = performance.now();
    report(name, now - last);
    last = now;
  };
}

/**
 * TEST-ONLY hook, so tests can stop or kill a writer at the worst moments
 * deterministically (test/storage_lock.test.ts, test/storage_crash.test.ts).
 * With ORCH_TEST_HOLD_LOCK_UNTIL=PATH, a writer holding the lock stops after
 * computing its new state (or, with ORCH_TEST_HOLD_AT=after_fence, after its
 * fence check, right before the rename), creates PATH.waiting, and waits until
 * PATH exists. Unset, it costs one environment lookup.
 */
function testHold(point: "before_write" | "after_fence"): void {
  const gate = rt.env("ORCH_TEST_HOLD_LOCK_UNTIL");
  if (!gate || (rt.env("ORCH_TEST_HOLD_AT") || "before_write") !== point) return;
  rt.writeText(`${gate}.waiting`, String(rt.pid));
  while (!rt.exists(gate)) pauseSync(10);
}

/** Blocks without spinning a core: for waits that must not yield to the event loop. */
function pauseSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function runInTransaction<T>(db: Db, dbPath: string, fn: (db: Db) => T): { value: T; changed: boolean } {
  db.exec("BEGIN IMMEDIATE");
  try {
    const before = db.totalChanges();
    const migrated = migrate(db, dbPath);
    const value = fn(db);
    const changed = migrated || db.totalChanges() !== before;
    db.exec("COMMIT");
    return { value, changed };
  } catch (err) {
    try {
      db.exec("ROLLBACK");
    } catch {
      // SQLite already rolled back (e.g. after SQLITE_FULL); the original error is the one to report
    }
    throw err;
  }
}

export interface InitResult {
  path: string;
  created: boolean;
  migrated_from: number | null;
  schema_version: number;
}

/** Creates the database, or migrates an existing one; existing data is always kept. */
export async function initDatabase(dbPath: string, options: StoreOptions = {}): Promise<InitResult> {
  const file = realDbPath(dbPath);
  if (rt.statOrNull(file)) assertDbFile(file); // a directory or FIFO is refused before touching the lock
  const onFile = await fileBindingAvailable();
  const lock = await lockFor(file, options);
  try {
    removeLeftovers(file);
    const exists = rt.statOrNull(file) !== null;
    const copy = await workingCopy(file, exists, onFile);
    try {
      const from = schemaVersion(copy.db);
      const { changed } = runInTransaction(copy.db, file, () => undefined);
      if (changed || !exists) copy.persist(false, () => lock.verify());
      return { path: dbPath, created: !exists, migrated_from: exists && changed ? from : null, schema_version: SCHEMA_VERSION };
    } finally {
      copy.discard();
    }
  } finally {
    lock.release();
  }
}

/**
 * A cheap fingerprint of the database file (no read of its contents). Every
 * write replaces the file, so a change of inode, size or mtime means "reload".
 */
export function fileStamp(dbPath: string): string {
  const st = rt.statOrNull(dbPath);
  return st ? `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}` : "missing";
}
