/**
 * Test harness: run the real CLI in a subprocess, the way an agent does,
 * against temporary databases.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BUNDLE = path.join(ROOT, "dist", "orch.mjs");
export const BINARY = path.join(ROOT, "dist", "bin", "orch-linux-x64");
export const DENO = path.join(ROOT, "node_modules", ".bin", "deno");

export type RuntimeKind = "node" | "deno" | "binary";
export type Entry = "orch" | "inbox" | "orch-worker-brief";

export const RUNTIMES: RuntimeKind[] = ["node", "deno", ...(existsSync(BINARY) || (process.platform === "linux" && process.arch === "x64") ? (["binary"] as const) : [])];

/** The command line that starts the CLI under a runtime. */
export function commandFor(runtime: RuntimeKind): { cmd: string; args: string[] } {
  switch (runtime) {
    case "node":
      return { cmd: process.execPath, args: [BUNDLE] };
    case "deno":
      return { cmd: DENO, args: ["run", "-A", "--quiet", path.join(ROOT, "mod.ts")] };
    case "binary":
      return { cmd: BINARY, args: [] };
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when --json was given */
  json: any;
}

export interface RunOptions {
  runtime?: RuntimeKind;
  entry?: Entry;
  cwd?: string;
  env?: Record<string, string>;
  input?: string;
}

function envFor(o: RunOptions): NodeJS.ProcessEnv {
  return { ...process.env, NO_COLOR: "1", ORCH_ENTRY: o.entry ?? "orch", ...o.env };
}

function parse(stdout: string, args: readonly string[]): any {
  if (!args.includes("--json")) return undefined;
  try {
    return JSON.parse(stdout);
  } catch {
    throw new Error(`--json output is not one JSON object:\n${stdout}`);
  }
}

/** Runs the CLI synchronously. */
export function run(args: readonly string[], o: RunOptions = {}): RunResult {
  const { cmd, args: pre } = commandFor(o.runtime ?? "node");
  const r = spawnSync(cmd, [...pre, ...args], { cwd: o.cwd, env: envFor(o), encoding: "utf8", input: o.input, timeout: 120_000 });
  const result = { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json: undefined as any };
  result.json = parse(r.stdout, args);
  return result;
}

/** Runs the CLI as a child process and resolves when it exits. */
export function runAsync(args: readonly string[], o: RunOptions = {}): Promise<RunResult> & { child: ReturnType<typeof spawn> } {
  const { cmd, args: pre } = commandFor(o.runtime ?? "node");
  const child = spawn(cmd, [...pre, ...args], { cwd: o.cwd, env: envFor(o) });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  if (o.input !== undefined) child.stdin.end(o.input);
  else child.stdin.end();
  const promise = new Promise<RunResult>((resolve) => {
    child.on("close", (code, signal) => {
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr, json: args.includes("--json") ? safeParse(stdout) : undefined });
    });
  }) as Promise<RunResult> & { child: typeof child };
  promise.child = child;
  return promise;
}

function safeParse(s: string): any {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/** A CLI bound to one database and runtime: `orch(...)`, `inbox(...)`. */
export function cliFor(db: string, runtime: RuntimeKind = "node", cwd?: string) {
  const o = (entry: Entry): RunOptions => ({ runtime, entry, cwd });
  return {
    db,
    orch: (...args: string[]) => run(["--db", db, "--json", ...args], o("orch")),
    inbox: (...args: string[]) => run(["--db", db, "--json", ...args], o("inbox")),
    orchAsync: (...args: string[]) => runAsync(["--db", db, "--json", ...args], o("orch")),
    inboxAsync: (...args: string[]) => runAsync(["--db", db, "--json", ...args], o("inbox")),
  };
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = "orch-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A temp dir with an initialised database. */
export function tempDb(runtime: RuntimeKind = "node") {
  const t = tempDir();
  const db = path.join(t.dir, "coord.db");
  const r = run(["--db", db, "--json", "init"], { runtime, entry: "inbox" });
  if (r.code !== 0) throw new Error(`init failed: ${r.stdout}${r.stderr}`);
  return { ...t, db, cli: cliFor(db, runtime) };
}

/** Asserts success and returns the JSON. */
export function ok(r: RunResult): any {
  if (r.code !== 0 || r.json?.ok !== true) throw new Error(`expected success, got exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.json;
}

/** Asserts a failure with the given error code; returns the error object. */
export function fails(r: RunResult, code: string): any {
  if (r.code === 0 || r.json?.ok !== false || r.json.error.code !== code) {
    throw new Error(`expected error ${code}, got exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r.json.error;
}

export function sqlite3(db: string, sql: string): string {
  return spawnSync("sqlite3", [db, sql], { encoding: "utf8" }).stdout.trim();
}

/** sha256 of a file's bytes (hex), to prove a failed command changed nothing. */
export function sha256File(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

/** Polls `check` until it returns a truthy value; fails after `timeoutMs` naming `what`. */
export async function waitUntil<T>(check: () => T | undefined | null | false, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
