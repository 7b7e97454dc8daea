/** The version of orch, and what it runs on. */
import { runtimeInfo } from "./_runtime.ts";
import { sqliteInfo } from "./sqlite.ts";
import { SCHEMA_VERSION } from "./schema.ts";

export const VERSION = "0.1.0";

export interface VersionInfo {
  version: string;
  runtime: string;
  runtime_version: string;
  compiled: boolean;
  sqlite: string;
  /** "sql.js" (WASM), or "bun:sqlite" (Bun's built-in SQLite, in the compiled binaries). */
  sqlite_binding: string;
  schema_version: number;
}

export async function versionInfo(): Promise<VersionInfo> {
  const rt = runtimeInfo();
  const sqlite = await sqliteInfo();
  return { version: VERSION, runtime: rt.name, runtime_version: rt.version, compiled: rt.compiled, sqlite: sqlite.version, sqlite_binding: sqlite.binding, schema_version: SCHEMA_VERSION };
}
