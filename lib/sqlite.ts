/**
 * SQLite behind one small, typed facade (`Db`), with two kinds of binding:
 *
 * - sql.js (SQLite compiled to WASM): everywhere. It works on a private
 *   in-memory image of the file, which storage.ts writes back by atomic rename.
 * - The runtime's own SQLite, where the runtime has one built in (nothing to
 *   ship, no native module): `bun:sqlite` on Bun, which the compiled binaries
 *   run, and `node:sqlite` on Deno. These work on files: storage.ts opens the
 *   database itself read-only for reads (orch never changes a database file in
 *   place, so an open file is one consistent version) and a copy of it for a
 *   write, renamed over the database exactly like sql.js's image. No WASM
 *   engine to start, native queries, no whole-file read. (Node 22's
 *   node:sqlite would qualify too, but still prints an experimental warning.)
 *   `ORCH_SQLITE=sqljs` turns them off.
 *
 * All are SQLite 3.5x; the file format and the SQL orch uses are the same.
 */
import type { Database, SqlJsStatic, Statement, SqlValue } from "sql.js";
import { loadSqliteWasm } from "./_wasm.ts";
import * as rt from "./_runtime.ts";

export type Param = string | number | null | Uint8Array | boolean | undefined;
export type Params = readonly Param[];
export type Row = Record<string, SqlValue>;

let engine: Promise<SqlJsStatic> | undefined;

/** Loads the SQLite engine once per process. */
export function sqlEngine(): Promise<SqlJsStatic> {
  if (!engine) rt.preferQuickWasmStartup();
  // imported on first use: a process on a built-in SQLite never evaluates sql.js
  engine ??= import("sql.js").then((m) => m.default({ wasmBinary: loadSqliteWasm() as unknown as ArrayBuffer }));
  return engine;
}

function bindable(params: Params): SqlValue[] {
  return params.map((p) => (p === undefined ? null : typeof p === "boolean" ? (p ? 1 : 0) : p));
}

/**
 * Settings for a private, in-memory copy of the file (durability comes from
 * storage.ts's atomic rename, never from SQLite's journal):
 * - exclusive locking: otherwise every statement re-checks the (emulated) file
 *   for a hot journal and a changed header, which costs more than the query;
 * - the rollback journal in memory: ROLLBACK still works, no journal file churn.
 */
const PRIVATE_COPY_PRAGMAS = "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = MEMORY; PRAGMA temp_store = MEMORY;";

/** A database file's bytes at the start of `buffer`, with spare room after them (see openImage). */
export interface FileImage {
  buffer: Uint8Array;
  length: number;
}

/** The buffer sql.js adopted as its in-memory file, and the file's change counter when it was read. */
interface Adopted {
  buffer: Uint8Array;
  counter: number;
}

const header = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, 100);

/** What Db needs from a binding. */
interface Connection {
  all<T>(sql: string, params: SqlValue[]): T[];
  get<T>(sql: string, params: SqlValue[]): T | undefined;
  /** Runs a statement; returns the number of rows it changed. */
  run(sql: string, params: SqlValue[]): number;
  exec(sql: string): void;
  export(): Uint8Array;
  /** The file as the last commit left it (sql.js's image); undefined for a file-backed connection. */
  fileBytes(): Uint8Array | undefined;
  close(): void;
}

/** A database handle with typed helpers, whichever SQLite binding runs it. */
export class Db {
  private readonly conn: Connection;

  constructor(conn: Connection) {
    this.conn = conn;
  }

  all<T = Row>(sql: string, params: Params = []): T[] {
    return this.conn.all<T>(sql, bindable(params));
  }

  get<T = Row>(sql: string, params: Params = []): T | undefined {
    return this.conn.get<T>(sql, bindable(params));
  }

  /** Runs a statement; returns the number of rows it changed. */
  run(sql: string, params: Params = []): number {
    return this.conn.run(sql, bindable(params));
  }

  /** Runs several statements with no parameters (schema scripts). */
  exec(sql: string): void {
    this.conn.exec(sql);
  }

  value<T = SqlValue>(sql: string, params: Params = []): T | undefined {
    const row = this.get(sql, params);
    return row === undefined ? undefined : (Object.values(row)[0] as T);
  }

  totalChanges(): number {
    return Number(this.value("SELECT total_changes()"));
  }

  /** Size of the database file in bytes, as SQLite sees it now. */
  fileSize(): number {
    return Number(this.value("PRAGMA page_count")) * Number(this.value("PRAGMA page_size"));
  }

  /** Serialises the database into a new buffer. */
  export(): Uint8Array {
    return this.conn.export();
  }

  /**
   * An in-memory database's file as the last commit left it, ready to be
   * written out (sql.js: the adopted buffer when it provably holds that commit,
   * else an export). For a handle that ran one write transaction.
   */
  fileBytes(): Uint8Array {
    return this.conn.fileBytes() ?? this.conn.export();
  }

  private closed = false;

  /** Frees the handle (a file-backed one is flushed and closed); safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.close();
  }
}

/** The statement cached for `sql`, prepared on first use. */
function prepared<S>(cache: Map<string, S>, sql: string, prepare: (sql: string) => S): S {
  let s = cache.get(sql);
  if (!s) {
    s = prepare(sql);
    cache.set(sql, s);
  }
  return s;
}

/** sql.js: a private in-memory image, prepared statements cached per SQL text. */
class SqlJsConnection implements Connection {
  readonly raw: Database;
  private readonly cache = new Map<string, Statement>();
  private readonly columns = new Map<Statement, string[]>();
  private readonly adopted: Adopted | undefined;

  constructor(raw: Database, adopted?: Adopted) {
    this.raw = raw;
    this.adopted = adopted;
  }

  private stmt(sql: string): Statement {
    return prepared(this.cache, sql, (text) => this.raw.prepare(text));
  }

  /** The current row as an object; column names are read once per statement (sql.js's getAsObject reads them per row). */
  private row<T>(s: Statement): T {
    let names = this.columns.get(s);
    if (!names) {
      names = s.getColumnNames();
      this.columns.set(s, names);
    }
    const values = s.get();
    const out: Record<string, SqlValue> = {};
    for (let i = 0; i < names.length; i++) out[names[i]!] = values[i]!;
    return out as T;
  }

  all<T>(sql: string, params: SqlValue[]): T[] {
    const s = this.stmt(sql);
    try {
      s.bind(params);
      const rows: T[] = [];
      while (s.step()) rows.push(this.row<T>(s));
      return rows;
    } finally {
      s.reset();
    }
  }

  get<T>(sql: string, params: SqlValue[]): T | undefined {
    const s = this.stmt(sql);
    try {
      s.bind(params);
      return s.step() ? this.row<T>(s) : undefined;
    } finally {
      s.reset();
    }
  }

  run(sql: string, params: SqlValue[]): number {
    const s = this.stmt(sql);
    try {
      s.bind(params);
      s.step();
      return this.raw.getRowsModified();
    } finally {
      s.reset();
    }
  }

  exec(sql: string): void {
    this.raw.exec(sql);
  }

  /** The handle stays usable but statements are dropped. */
  export(): Uint8Array {
    this.freeStatements();
    return this.raw.export();
  }

  fileBytes(): Uint8Array | undefined {
    return this.committedImage();
  }

  private number(sql: string): number {
    return Number(Object.values(this.get<Row>(sql, [])!)[0]);
  }

  /**
   * sql.js writes the file in place while it fits its buffer, and moves it to a
   * new one when it outgrows it or is truncated. Proof that it stayed: SQLite
   * bumps the header's change counter (and the page count beside it) in page 1
   * at the connection's first commit, and writes a commit's pages in page
   * order, page 1 first. So if our buffer's counter moved, page 1 of the
   * commit landed here; if the file still fits, nothing after it moved it.
   */
  private committedImage(): Uint8Array | undefined {
    const image = this.adopted;
    if (!image) return undefined;
    const pageCount = this.number("PRAGMA page_count");
    const size = pageCount * this.number("PRAGMA page_size");
    if (size > image.buffer.length) return undefined;
    const h = header(image.buffer);
    const counter = h.getUint32(24);
    if (counter === image.counter || h.getUint32(92) !== counter || h.getUint32(28) !== pageCount) return undefined;
    return image.buffer.subarray(0, size);
  }

  close(): void {
    this.freeStatements();
    this.raw.close();
  }

  private freeStatements(): void {
    for (const s of this.cache.values()) s.free();
    this.cache.clear();
    this.columns.clear();
  }
}

/**
 * Opens a database file image without copying it: sql.js stores a new
 * in-memory file as `bytes.slice(0, length)`, and this answers that call with
 * the whole buffer, so SQLite reads and writes the caller's memory (and its
 * spare room as the file grows). A write then needs neither a second copy of
 * the file in memory nor export's page-by-page backup (~1 ms per MB); see
 * Db.fileBytes() for when the buffer is trusted. Had sql.js copied instead,
 * `adopted` stays unset and everything falls back to export().
 */
export async function openImage(image: FileImage): Promise<Db> {
  const SQL = await sqlEngine();
  const { buffer, length } = image;
  const counter = header(buffer).getUint32(24);
  let adopted = false;
  const view = buffer.subarray(0, length);
  Object.defineProperty(view, "slice", {
    value(start?: number, end?: number): Uint8Array {
      if (start === 0 && end === length) {
        adopted = true;
        return buffer;
      }
      return buffer.subarray(0, length).slice(start, end);
    },
  });
  const raw = new SQL.Database(view);
  raw.exec(PRIVATE_COPY_PRAGMAS);
  return new Db(new SqlJsConnection(raw, adopted ? { buffer, counter } : undefined));
}

export async function openBytes(bytes?: Uint8Array): Promise<Db> {
  const SQL = await sqlEngine();
  const raw = new SQL.Database(bytes);
  raw.exec(PRIVATE_COPY_PRAGMAS);
  return new Db(new SqlJsConnection(raw));
}

// ---- Bun's built-in SQLite ---------------------------------------------------

/** The part of bun:sqlite orch uses (typed here: Bun's types are not a dependency). */
interface BunStatement {
  all(...params: SqlValue[]): unknown[];
  get(...params: SqlValue[]): unknown;
  run(...params: SqlValue[]): { changes: number };
}
interface BunDatabase {
  query(sql: string): BunStatement;
  run(sql: string): unknown;
  serialize(): Uint8Array;
  close(): void;
}
interface BunSqlite {
  Database: new (path: string, options: { readonly?: boolean; readwrite?: boolean; create?: boolean }) => BunDatabase;
}

/** bun:sqlite caches a prepared statement per SQL text in query(). */
class BunConnection implements Connection {
  constructor(private readonly raw: BunDatabase) {}

  all<T>(sql: string, params: SqlValue[]): T[] {
    return this.raw.query(sql).all(...params) as T[];
  }

  get<T>(sql: string, params: SqlValue[]): T | undefined {
    return (this.raw.query(sql).get(...params) ?? undefined) as T | undefined;
  }

  run(sql: string, params: SqlValue[]): number {
    return this.raw.query(sql).run(...params).changes;
  }

  exec(sql: string): void {
    this.raw.run(sql);
  }

  export(): Uint8Array {
    return this.raw.serialize();
  }

  fileBytes(): undefined {
    return undefined;
  }

  close(): void {
    this.raw.close();
  }
}

// ---- node:sqlite (Deno) -------------------------------------------------------

/** The part of node:sqlite orch uses. */
interface NodeStatement {
  all(...params: SqlValue[]): unknown[];
  get(...params: SqlValue[]): unknown;
  run(...params: SqlValue[]): { changes: number | bigint };
}
interface NodeDatabase {
  prepare(sql: string): NodeStatement;
  exec(sql: string): void;
  close(): void;
}
interface NodeSqlite {
  DatabaseSync: new (path: string, options?: { readOnly?: boolean }) => NodeDatabase;
}

/** node:sqlite: statements prepared once per SQL text. */
class NodeConnection implements Connection {
  private readonly cache = new Map<string, NodeStatement>();
  constructor(private readonly raw: NodeDatabase) {}

  private stmt(sql: string): NodeStatement {
    return prepared(this.cache, sql, (text) => this.raw.prepare(text));
  }

  all<T>(sql: string, params: SqlValue[]): T[] {
    return this.stmt(sql).all(...params) as T[];
  }

  get<T>(sql: string, params: SqlValue[]): T | undefined {
    return (this.stmt(sql).get(...params) ?? undefined) as T | undefined;
  }

  run(sql: string, params: SqlValue[]): number {
    return Number(this.stmt(sql).run(...params).changes);
  }

  exec(sql: string): void {
    this.raw.exec(sql);
  }

  export(): Uint8Array {
    // storage.ts never exports a file-backed database: it renames the file itself
    throw new Error("node:sqlite cannot serialise a database");
  }

  fileBytes(): undefined {
    return undefined;
  }

  close(): void {
    this.cache.clear();
    this.raw.close();
  }
}

// ---- choosing the binding -------------------------------------------------------

/** A runtime's built-in SQLite, opening files. */
interface FileBinding {
  name: "bun:sqlite" | "node:sqlite";
  open(path: string, mode: "read" | "write" | "create"): Connection;
}

let fileBinding: Promise<FileBinding | undefined> | undefined;

async function loadFileBinding(): Promise<FileBinding | undefined> {
  if (rt.env("ORCH_SQLITE") === "sqljs") return undefined;
  const builtin = await rt.importBuiltinSqlite();
  if (builtin?.kind === "bun") {
    const { Database } = builtin.module as BunSqlite;
    return {
      name: "bun:sqlite",
      open: (path, mode) => new BunConnection(new Database(path, mode === "read" ? { readonly: true } : { readwrite: true, create: mode === "create" })),
    };
  }
  if (builtin?.kind === "node") {
    const { DatabaseSync } = builtin.module as NodeSqlite;
    // node:sqlite has no "must exist" flag: storage.ts checks that the copy exists right before
    return { name: "node:sqlite", open: (path, mode) => new NodeConnection(new DatabaseSync(path, { readOnly: mode === "read" })) };
  }
  return undefined;
}

/**
 * True when storage.ts should open files with the runtime's built-in SQLite
 * (see the module comment); false means sql.js.
 */
export async function fileBindingAvailable(): Promise<boolean> {
  fileBinding ??= loadFileBinding();
  return (await fileBinding) !== undefined;
}

/**
 * Opens a database file with the runtime's built-in SQLite (check
 * fileBindingAvailable first). "read": read-only, for a file orch never
 * changes in place. "write" (must exist) or "create": a private working copy that
 * storage.ts makes durable and renames into place itself, so SQLite's own
 * journal and syncs are not needed: the rollback journal stays in memory
 * (ROLLBACK still works) and nothing is fsynced until the transaction is done.
 */
export async function openFile(path: string, mode: "read" | "write" | "create"): Promise<Db> {
  const binding = (await fileBinding)!;
  if (mode === "write" && !rt.exists(path)) throw Object.assign(new Error(`${path} is gone`), { code: "ENOENT" });
  const db = new Db(binding.open(path, mode));
  if (mode !== "read") db.exec(`${PRIVATE_COPY_PRAGMAS} PRAGMA synchronous = OFF;`);
  return db;
}

/** The SQLite that opens database files in this process: its version and binding. */
export async function sqliteInfo(): Promise<{ version: string; binding: "sql.js" | "bun:sqlite" | "node:sqlite" }> {
  fileBinding ??= loadFileBinding();
  const binding = await fileBinding;
  const db = binding ? new Db(binding.open(":memory:", "create")) : await openBytes();
  try {
    return { version: String(db.value("SELECT sqlite_version()")), binding: binding?.name ?? "sql.js" };
  } finally {
    db.close();
  }
}
