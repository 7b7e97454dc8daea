/**
 * sql.js (SQLite compiled to WASM) behind a small, typed facade: one engine
 * per process, and a `Db` wrapper with cached prepared statements.
 */
import initSqlJs from "sql.js";
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
  engine ??= initSqlJs({ wasmBinary: loadSqliteWasm() as unknown as ArrayBuffer });
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

/** A database handle with prepared-statement caching and typed helpers. */
export class Db {
  readonly raw: Database;
  private readonly cache = new Map<string, Statement>();
  private readonly columns = new Map<Statement, string[]>();
  private readonly adopted: Adopted | undefined;

  constructor(raw: Database, adopted?: Adopted) {
    this.raw = raw;
    this.adopted = adopted;
  }

  private stmt(sql: string): Statement {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.raw.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
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

  all<T = Row>(sql: string, params: Params = []): T[] {
    const s = this.stmt(sql);
    try {
      s.bind(bindable(params));
      const rows: T[] = [];
      while (s.step()) rows.push(this.row<T>(s));
      return rows;
    } finally {
      s.reset();
    }
  }

  get<T = Row>(sql: string, params: Params = []): T | undefined {
    const s = this.stmt(sql);
    try {
      s.bind(bindable(params));
      return s.step() ? this.row<T>(s) : undefined;
    } finally {
      s.reset();
    }
  }

  /** Runs a statement; returns the number of rows it changed. */
  run(sql: string, params: Params = []): number {
    const s = this.stmt(sql);
    try {
      s.bind(bindable(params));
      s.step();
      return this.raw.getRowsModified();
    } finally {
      s.reset();
    }
  }

  /** Runs several statements with no parameters (schema scripts). */
  exec(sql: string): void {
    this.raw.exec(sql);
  }

  value<T = SqlValue>(sql: string, params: Params = []): T | undefined {
    const row = this.get(sql, params);
    return row === undefined ? undefined : (Object.values(row)[0] as T);
  }

  totalChanges(): number {
    return Number(this.value("SELECT total_changes()"));
  }

  /** Serialises the database; the handle stays usable but statements are dropped. */
  export(): Uint8Array {
    this.freeStatements();
    return this.raw.export();
  }

  /**
   * The file as the last commit left it, ready to be written out: the adopted
   * buffer itself when it provably holds that commit (no copy), else export().
   * For a handle that ran one write transaction (VACUUM included or not, callers
   * that VACUUM use export()).
   */
  fileBytes(): Uint8Array {
    return this.committedImage() ?? this.export();
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
    const pageCount = Number(this.value("PRAGMA page_count"));
    const size = pageCount * Number(this.value("PRAGMA page_size"));
    if (size > image.buffer.length) return undefined;
    const h = header(image.buffer);
    const counter = h.getUint32(24);
    if (counter === image.counter || h.getUint32(92) !== counter || h.getUint32(28) !== pageCount) return undefined;
    return image.buffer.subarray(0, size);
  }

  private closed = false;

  /** Frees the handle; safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
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
  return new Db(raw, adopted ? { buffer, counter } : undefined);
}

export async function openBytes(bytes?: Uint8Array): Promise<Db> {
  const SQL = await sqlEngine();
  const raw = new SQL.Database(bytes);
  raw.exec(PRIVATE_COPY_PRAGMAS);
  return new Db(raw);
}

export async function sqliteVersion(): Promise<string> {
  const db = await openBytes();
  try {
    return String(db.value("SELECT sqlite_version()"));
  } finally {
    db.close();
  }
}
