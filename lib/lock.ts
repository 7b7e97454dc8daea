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

interface ObservedLock {
  info?: LockInfo;
  mtimeMs: number;
  /** Identifies this lockfile (not just its path), so a look-then-act never acts on a newer lock. */
  ino: number;
}

function isLockInfo(v: unknown): v is LockInfo {
  const i = v as LockInfo | null;
  return typeof i === "object" && i !== null && typeof i.token === "string" && typeof i.host === "string" &&
    Number.isSafeInteger(i.pid) && i.pid > 0 && typeof i.created_at === "number" && Number.isFinite(i.created_at);
}

function readLock(lockPath: string): ObservedLock | null {
  const st = rt.statOrNull(lockPath);
  if (!st) return null;
  try {
    const info: unknown = JSON.parse(rt.readText(lockPath));
    if (isLockInfo(info)) return { info, mtimeMs: st.mtimeMs, ino: st.ino };
  } catch (err) {
    if (rt.errno(err) === "ENOENT") return null;
    // empty, partial or foreign contents: judged by its modification time below
  }
  return { mtimeMs: st.mtimeMs, ino: st.ino };
}

const holderOf = (lock: ObservedLock): string =>
  lock.info ? `held by pid ${lock.info.pid} on ${lock.info.host}` : "with unreadable contents";

/** Why a lock may be broken, or null while its owner may still be working. */
function staleReason(lock: ObservedLock, staleMs: number): string | null {
  const info = lock.info;
  // the earlier of the two clocks: a lock whose created_at lies in the future still ages by mtime
  const age = rt.now() - (info ? Math.min(info.created_at, lock.mtimeMs) : lock.mtimeMs);
  if (info && info.host === rt.hostname() && info.pid !== rt.pid && !rt.isProcessAlive(info.pid)) {
    return `its owner (pid ${info.pid}) is no longer running`;
  }
  if (age > staleMs) return `it is ${Math.round(age)} ms old, past the ${staleMs} ms stale threshold`;
  return null;
}

/** Side files carry the creating pid, so leftovers of dead processes can be recognised and removed. */
const STAGE = ".stage-";
const BROKEN = ".broken-";

function tryCreate(lockPath: string, info: LockInfo): boolean {
  const staging = `${lockPath}${STAGE}${info.pid}-${info.token}`;
  // no fsync: the lock only matters between live processes, and after a power
  // loss an empty or missing lockfile is judged by its age like any other
  rt.writeText(staging, JSON.stringify(info));
  try {
    rt.link(staging, lockPath);
    return true;
  } catch (err) {
    if (rt.errno(err) === "EEXIST") return false;
    // a cleaner removed our staging file (it took us for dead): simply try again
    if (rt.errno(err) === "ENOENT") return false;
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
 * Moves the observed lock aside. If, between our look and the move, someone
 * else replaced it with another lockfile (another inode, or another token), we
 * put theirs back (link fails if the slot was taken meanwhile, in which case
 * that owner's fence check makes it fail safely). Returns true if the observed
 * lock is gone.
 */
function breakLock(lockPath: string, observed: ObservedLock): boolean {
  const aside = `${lockPath}${BROKEN}${rt.pid}-${rt.randomToken(6)}`;
  try {
    rt.rename(lockPath, aside);
  } catch (err) {
    if (rt.errno(err) === "ENOENT") return false;
    throw err;
  }
  const moved = readLock(aside);
  const same = moved !== null && (moved.ino === observed.ino || !moved.ino) &&
    moved.info?.token === observed.info?.token;
  if (moved !== null && !same) {
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

/**
 * Removes side files (lock staging and broken-lock files) that processes left
 * when they died between creating and removing them. Call with the lock held.
 */
export function removeLockLeftovers(dbPath: string): void {
  const lockName = rt.path.basename(lockPathFor(dbPath));
  const dir = rt.path.dirname(dbPath);
  for (const name of rt.readdir(dir)) {
    if (!name.startsWith(lockName)) continue;
    const rest = name.slice(lockName.length);
    const m = /^(?:\.stage-|\.broken-)(\d+)-[0-9a-f]+$/.exec(rest);
    if (m && Number(m[1]) !== rt.pid && !rt.isProcessAlive(Number(m[1]))) rt.unlinkQuiet(rt.path.join(dir, name));
  }
}

export async function acquireLock(dbPath: string, options: LockOptions): Promise<LockHandle & { brokeStale: boolean }> {
  const lockPath = lockPathFor(dbPath);
  const info: LockInfo = { token: rt.randomToken(), pid: rt.pid, host: rt.hostname(), created_at: 0 };
  const deadline = rt.now() + options.timeoutMs;
  let delay = 2;
  let brokeStale = false;
  let holder: LockInfo | undefined;
  for (;;) {
    // look before trying: waiters poll, and a look costs a stat, a try a file write
    let current = readLock(lockPath);
    if (current === null) {
      info.created_at = rt.now();
      if (tryCreate(lockPath, info)) break;
      current = readLock(lockPath);
    }
    if (current) {
      holder = current.info;
      const reason = staleReason(current, options.staleMs);
      if (reason !== null && breakLock(lockPath, current)) {
        brokeStale = true;
        options.onWarning?.(`orch: broke a stale lock on ${dbPath} (${holderOf(current)}): ${reason}`);
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
      // leave a lock someone else took over alone; move ours aside and check, so
      // one that changed hands between the look and the move is put back
      const current = readLock(lockPath);
      if (current?.info?.token === token) breakLock(lockPath, current);
    },
  };
}
