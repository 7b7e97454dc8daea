/**
 * Where the SQLite WASM binary comes from. From source it is read out of the
 * installed sql.js package; the build (scripts/build.ts) swaps this module for
 * one that inlines the bytes, so the bundle and the binaries need no file.
 */
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

export function loadSqliteWasm(): Uint8Array {
  const require = createRequire(import.meta.url);
  return readFileSync(require.resolve("sql.js/dist/sql-wasm.wasm"));
}
