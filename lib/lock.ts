/**
 * The cross-process write lock: a lockfile beside the database, created
 * atomically with its full contents (write a private file, then hard-link it
 * into place, which fails if the lock exists). Waits are bounded with backoff.
 * A lock whose owner is dead (same host) or that is older than the stale
 * threshold is broken; the holder re-checks its token right before replacing
 * the database (the fence), so a writer whose lock was broken cannot write.
 */
import * as rt from "./_runtime.ts";
import { OrchError } from "./errors.ts";

export interface LockOptions {
  /** How long to wait for the lock before failing with `busy`. */
  timeoutMs: number;
  /** A lock older than this is considered abandoned and broken. */
  staleMs: number;
  /** Told about every broken lock (the CLI prints it on stderr). */
  onWarning?: (message: string) => void;
}

export const DEFAULT_LOCK_TIMEOUT_MS = 10_000;
export const DEFAULT_LOCK_STALE_MS = 30_000;

interface LockInfo {
  token: string;
  pid: number;
  host: string;
  created_at: number;
}

export interface LockHandle {
  readonly path: string;
  readonly token: string;
  /** Throws `lock_lost` unless the lockfile still carries our token. */
  verify(): void;
  /** Removes the lockfile if it is still ours. */
  release(): void;
}

export function lockPathFor(dbPath: string): string {
  return `${dbPath}.lock`;
}

function readLock(lockPath: string): { info?: LockInfo; mtimeMs: number } | null {
  const st = rt.statOrNull(lockPath);
  if (!st) return null;
  try {
    const info = JSON.parse(rt.readText(lockPath)) as LockInfo;
    if (typeof info.token === "string" && typeof info.created_at === "number") return { info, mtimeMs: st.mtimeMs };
  } catch {
    // unreadable contents: judged by its modification time below
  }
  return { mtimeMs: st.mtimeMs };
}

/** Why a lock may be broken, or null while its owner may still be working. */
function staleReason(lock: { info?: LockInfo; mtimeMs: number }, staleMs: number): string | null {
  const info = lock.info;
  const age = rt.now() - (info ? info.created_at : lock.mtimeMs);
  if (info && info.host === rt.hostname() && info.pid !== rt.pid && !rt.isProcessAlive(info.pid)) {
    return `its owner (pid ${info.pid}) is no longer running`;
  }
  if (age > staleMs) return `it is ${Math.round(age)} ms old, past the ${staleMs} ms stale threshold`;
  return null;
}

function tryCreate(lockPath: string, info: LockInfo): boolean {
  const staging = `${lockPath}.${info.token}`;
  rt.writeFileDurable(staging, JSON.stringify(info), true);
  try {
    rt.link(staging, lockPath);
    return true;
  } catch (err) {
    if (rt.errno(err) === "EEXIST") return false;
    if (rt.errno(err) === "EPERM" || rt.errno(err) === "ENOTSUP" || rt.errno(err) === "ENOSYS") {
      // file systems without hard links: exclusive create is atomic too, only briefly empty
      try {
        rt.writeFileDurable(lockPath, JSON.stringify(info), true);
        return true;
      } catch (err2) {
        if (rt.errno(err2) === "EEXIST") return false;
        throw err2;
      }
    }
    throw err;
  } finally {
    rt.unlinkQuiet(staging);
  }
}

/**
 * Moves a stale lock aside. If, between our look and the move, someone else
 * replaced it with a fresh lock, we put theirs back (link fails if the slot was
 * taken meanwhile, in which case their fence check makes them fail safely).
 */
function breakLock(lockPath: string, observedToken: string | undefined): boolean {
  const aside = `${lockPath}.broken-${rt.randomToken(6)}`;
  try {
    rt.rename(lockPath, aside);
  } catch (err) {
    if (rt.errno(err) === "ENOENT") return false;
    throw err;
  }
  const moved = readLock(aside);
  if (observedToken !== undefined && moved?.info && moved.info.token !== observedToken) {
    try {
      rt.link(aside, lockPath);
    } catch {
      // the slot was taken again; the fresh owner's fence will refuse its write
    }
    rt.unlinkQuiet(aside);
    return false;
  }
  rt.unlinkQuiet(aside);
  return true;
}

export async function acquireLock(dbPath: string, options: LockOptions): Promise<LockHandle & { brokeStale: boolean }> {
  const lockPath = lockPathFor(dbPath);
  const info: LockInfo = { token: rt.randomToken(), pid: rt.pid, host: rt.hostname(), created_at: 0 };
  const deadline = rt.now() + options.timeoutMs;
  let delay = 2;
  let brokeStale = false;
  let holder: LockInfo | undefined;
  for (;;) {
    info.created_at = rt.now();
    if (tryCreate(lockPath, info)) break;
    const current = readLock(lockPath);
    if (current) {
      holder = current.info;
      const reason = staleReason(current, options.staleMs);
      if (reason !== null && breakLock(lockPath, current.info?.token)) {
        brokeStale = true;
        options.onWarning?.(`orch: broke a stale lock on ${dbPath}: ${reason}`);
        continue;
      }
    }
    if (rt.now() >= deadline) {
      const who = holder ? ` (held by pid ${holder.pid} on ${holder.host} for ${rt.now() - holder.created_at} ms)` : "";
      throw new OrchError("busy", `the database ${dbPath} is locked by another writer${who}; gave up after ${options.timeoutMs} ms`, {
        hint: "run the command again, or raise --lock-timeout-ms / ORCH_LOCK_TIMEOUT_MS",
        details: { lock_path: lockPath },
      });
    }
    await rt.sleep(Math.min(delay, Math.max(1, deadline - rt.now())) * (0.5 + Math.random()));
    delay = Math.min(delay * 1.6, 50);
  }
  const token = info.token;
  return {
    path: lockPath,
    token,
    brokeStale,
    verify() {
      const current = readLock(lockPath);
      if (current?.info?.token !== token) {
        throw new OrchError(
          "lock_lost",
          `the write lock on ${dbPath} was taken over while this command held it (it was paused past the ${options.staleMs} ms stale threshold); nothing was written`,
          { hint: "run the command again" },
        );
      }
    },
    release() {
      // move-aside-and-check, so a lock someone else took over is never deleted
      breakLock(lockPath, token);
    },
  };
}
