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

/** A database handle with prepared-statement caching and typed helpers. */
export class Db {
  readonly raw: Database;
  private readonly cache = new Map<string, Statement>();
  private readonly columns = new Map<Statement, string[]>();

  constructor(raw: Database) {
    this.raw = raw;
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
