/**
 * The runtime adapter: the only module that knows whether orch runs on Node,
 * Deno or Bun. All three implement the `node:` built-ins used here, so the
 * rest of lib/ calls these helpers and stays runtime-neutral.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { randomBytes } from "node:crypto";
import * as v8 from "node:v8";

export type RuntimeName = "node" | "deno" | "bun";

declare const Deno: { version: { deno: string } } | undefined;
declare const Bun: { version: string } | undefined;

export function runtimeInfo(): { name: RuntimeName; version: string; compiled: boolean } {
  if (typeof Bun !== "undefined") {
    // A `bun build --compile` binary runs from a virtual /$bunfs path.
    const compiled = import.meta.url.includes("$bunfs") || import.meta.url.includes("~BUN");
    return { name: "bun", version: Bun.version, compiled };
  }
  if (typeof Deno !== "undefined") return { name: "deno", version: Deno.version.deno, compiled: false };
  return { name: "node", version: process.versions.node, compiled: false };
}

export const platform = process.platform;
export const isWindows = process.platform === "win32";
export const pid = process.pid;
export const hostname = (): string => os.hostname();
export const now = (): number => Date.now();
export const cwd = (): string => process.cwd();
export const env = (name: string): string | undefined => process.env[name];
export const argv = (): string[] => process.argv.slice(2);
export const execPath = (): string => process.execPath;
export const scriptPath = (): string | undefined => process.argv[1];
export const randomToken = (bytes = 16): string => randomBytes(bytes).toString("hex");
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True if a process with this id exists on this host (EPERM means it exists). */
export function isProcessAlive(processId: number): boolean {
  try {
    process.kill(processId, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * orch runs as many short processes. On Node, V8's optimising WASM tier
 * compiles much of SQLite in the background on every start and roughly doubles
 * a command's CPU time; the baseline tier alone is plenty for small databases.
 */
export function preferQuickWasmStartup(): void {
  if (runtimeInfo().name !== "node") return;
  try {
    v8.setFlagsFromString("--liftoff-only");
  } catch {
    // an embedder that refuses V8 flags just keeps the default tiers
  }
}


/**
 * The runtime's built-in SQLite module: bun:sqlite on Bun, node:sqlite on
 * Deno; undefined elsewhere (Node 20 has none; Node 22's warns that it is
 * experimental on every start). Specifiers are assembled at run time so
 * neither esbuild nor Deno tries to resolve a module only another runtime has.
 */
export async function importBuiltinSqlite(): Promise<{ kind: "bun" | "node"; module: unknown } | undefined> {
  const name = runtimeInfo().name;
  const specifier = (scheme: string) => [scheme, "sqlite"].join(":");
  if (name === "bun") return { kind: "bun", module: await import(specifier("bun")) };
  if (name === "deno") {
    try {
      return { kind: "node", module: await import(specifier("node")) };
    } catch {
      return undefined; // a Deno without node:sqlite: sql.js it is
    }
  }
  return undefined;
}

// ---- file system -----------------------------------------------------------

export { path };

export function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch (err) {
    if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return null;
    throw err;
  }
}

/**
 * Reads a whole file into a new buffer `room` bytes longer than the file (the
 * room costs no memory until written: fresh pages are mapped on first touch).
 * Size and bytes come from one open file, so a file replaced by rename
 * meanwhile is still read whole, from its old version.
 */
export function readFileWithRoom(p: string, room: number): { buffer: Uint8Array; length: number } {
  const fd = fs.openSync(p, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const buffer = new Uint8Array(size + room);
    let length = 0;
    while (length < size) {
      const n = fs.readSync(fd, buffer, length, size - length, length);
      if (n === 0) break; // shorter than fstat said: the caller's header check reports it
      length += n;
    }
    return { buffer, length };
  } finally {
    fs.closeSync(fd);
  }
}
export const readText = (p: string): string => fs.readFileSync(p, "utf8");
export const writeText = (p: string, text: string): void => fs.writeFileSync(p, text);
export const rename = (from: string, to: string): void => fs.renameSync(from, to);
export const link = (from: string, to: string): void => fs.linkSync(from, to);
export const readdir = (p: string): string[] => fs.readdirSync(p);
export const mkdirp = (p: string): void => void fs.mkdirSync(p, { recursive: true });
export const exists = (p: string): boolean => fs.existsSync(p);
export const realpath = (p: string): string => fs.realpathSync(p);
export const rmdir = (p: string): void => fs.rmdirSync(p);
/** Appends with O_APPEND, so concurrent writers never overwrite each other. */
export const appendText = (p: string, text: string): void => fs.appendFileSync(p, text);

export function unlinkQuiet(p: string): void {
  try {
    fs.unlinkSync(p);
  } catch {
    // already gone, or never written: nothing to clean up
  }
}

/** Writes bytes to a new file and forces them to disk before returning. */
export function writeFileDurable(p: string, data: Uint8Array | string, exclusive = false): void {
  const fd = fs.openSync(p, exclusive ? "wx" : "w");
  try {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    // write() may write less than asked (a nearly full disk) without an error;
    // the next call then fails with ENOSPC, which must not go unnoticed
    for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done, bytes.length - done);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Forces a file's contents to disk. */
export function fsyncFile(p: string): void {
  const fd = fs.openSync(p, "r+");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Copies a file to a path that must not exist yet (the runtime copies in the kernel where it can). */
export const copyFileExclusive = (from: string, to: string): void => fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL);

/** Adds the owner's write permission, keeping the other bits. */
export function makeOwnerWritable(p: string): void {
  if (isWindows) return;
  fs.chmodSync(p, (fs.statSync(p).mode & 0o7777) | 0o200);
}

/** Up to `n` bytes from the start of a file, and the file's size. */
export function readFileHead(p: string, n: number): { buffer: Uint8Array; length: number } {
  const fd = fs.openSync(p, "r");
  try {
    const buffer = new Uint8Array(n);
    fs.readSync(fd, buffer, 0, n, 0);
    return { buffer, length: fs.fstatSync(fd).size };
  } finally {
    fs.closeSync(fd);
  }
}

/** Makes a rename durable by syncing its directory (POSIX only; Windows cannot open dirs). */
export function fsyncDir(dir: string): void {
  if (isWindows) return;
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // some file systems refuse directory fsync; the rename itself is still atomic
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Sum of file sizes below a directory (for cleanup reports). */
export function diskUsage(p: string): number {
  let total = 0;
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  for (const entry of fs.readdirSync(p)) total += diskUsage(path.join(p, entry));
  return total;
}

/** Reads standard input as UTF-8 text, up to maxBytes (for `-` file arguments). */
export async function readStdin(maxBytes: number): Promise<{ text: string; tooLong: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array);
    size += b.length;
    // stop rather than buffer an unbounded stream; the caller reports the limit
    if (size > maxBytes) return { text: "", tooLong: true };
    chunks.push(b);
  }
  return { text: Buffer.concat(chunks).toString("utf8"), tooLong: false };
}
