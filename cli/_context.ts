/**
 * What every command shares: the global flags (--db, --json, lock limits),
 * resolved once, and the result type that main.ts renders.
 */
import * as rt from "../lib/_runtime.ts";
import { OrchError } from "../lib/errors.ts";
import type { StoreOptions } from "../lib/storage.ts";
import type { Db } from "../lib/sqlite.ts";
import { readSnapshot, writeTransaction } from "../lib/storage.ts";
import { onTiming } from "./_timing.ts";

export interface GlobalOptions {
  db?: string;
  json?: boolean;
  lockTimeoutMs?: string;
  lockStaleMs?: string;
}

/** A command's outcome: `data` goes out as JSON (beside ok: true), `text` for people. */
export interface CommandResult {
  data: Record<string, unknown>;
  text: string;
  /** Non-zero for results that are not errors but should fail a script (none yet use it). */
  exitCode?: number;
}

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  isTTY: boolean;
}

export class Context {
  readonly io: Io;
  private readonly globals: GlobalOptions;

  constructor(globals: GlobalOptions, io: Io) {
    this.globals = globals;
    this.io = io;
  }

  get json(): boolean {
    return this.globals.json === true;
  }

  /** The database path, absolute: workers run in other directories. */
  get dbPath(): string {
    const raw = this.globals.db ?? rt.env("ORCH_DB");
    if (!raw) {
      throw new OrchError("usage", "no database given: pass --db PATH (or set ORCH_DB)", {
        hint: "create one with `inbox --db ./coord.db init`",
      });
    }
    return rt.path.resolve(rt.cwd(), raw);
  }

  get store(): StoreOptions {
    return {
      timeoutMs: numberSetting(this.globals.lockTimeoutMs, "ORCH_LOCK_TIMEOUT_MS", "--lock-timeout-ms"),
      staleMs: numberSetting(this.globals.lockStaleMs, "ORCH_LOCK_STALE_MS", "--lock-stale-ms"),
      onWarning: (message) => this.io.stderr(`${message}\n`),
      onTiming,
    };
  }

  async read<T>(fn: (db: Db) => T): Promise<T> {
    const db = await readSnapshot(this.dbPath);
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }

  write<T>(fn: (db: Db) => T): Promise<T> {
    return writeTransaction(this.dbPath, fn, this.store);
  }
}

function numberSetting(flag: string | undefined, envName: string, flagName: string): number | undefined {
  const raw = flag ?? rt.env(envName);
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    throw new OrchError("usage", `${flag !== undefined ? flagName : envName} must be a number of milliseconds, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** Parses a whole-number flag within bounds. */
export function intOption(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value.trim())) throw new OrchError("usage", `${flag} must be a whole number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new OrchError("usage", `${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** Reads --body or --body-file (exactly one may be given). */
export function bodyFrom(o: { body?: string; bodyFile?: string }, required: boolean): string | undefined {
  if (o.body !== undefined && o.bodyFile !== undefined) throw new OrchError("usage", "give --body or --body-file, not both");
  if (o.bodyFile !== undefined) {
    const p = rt.path.resolve(rt.cwd(), o.bodyFile);
    if (!rt.statOrNull(p)?.isFile()) throw new OrchError("usage", `--body-file ${o.bodyFile}: no such file`);
    return rt.readText(p);
  }
  if (o.body === undefined && required) throw new OrchError("usage", "a message body is required: give --body TEXT or --body-file PATH");
  return o.body;
}
