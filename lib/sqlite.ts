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

/** A database handle with prepared-statement caching and typed helpers. */
export class Db {
  readonly raw: Database;
  private readonly cache = new Map<string, Statement>();

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

  all<T = Row>(sql: string, params: Params = []): T[] {
    const s = this.stmt(sql);
    try {
      s.bind(bindable(params));
      const rows: T[] = [];
      while (s.step()) rows.push(s.getAsObject() as T);
      return rows;
    } finally {
      s.reset();
    }
  }

  get<T = Row>(sql: string, params: Params = []): T | undefined {
    const s = this.stmt(sql);
    try {
      s.bind(bindable(params));
      return s.step() ? (s.getAsObject() as T) : undefined;
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
  }
}

export async function openBytes(bytes?: Uint8Array): Promise<Db> {
  const SQL = await sqlEngine();
  return new Db(new SQL.Database(bytes));
}

export async function sqliteVersion(): Promise<string> {
  const db = await openBytes();
  try {
    return String(db.value("SELECT sqlite_version()"));
  } finally {
    db.close();
  }
}
