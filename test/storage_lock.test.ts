/**
 * The write lock, through the real CLI: stale locks of dead processes are
 * recovered, live locks make writers wait then fail with `busy`, old locks
 * are broken, readers never need the lock, and a writer whose lock was broken
 * while it was stopped (SIGSTOP) fails with `lock_lost` without writing.
 */
import { afterAll, describe, expect, test } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync, unlinkSync } from "node:fs";
import { hostname } from "node:os";
import * as path from "node:path";
import { fails, ok, runAsync, RUNTIMES, sha256File, sqlite3, tempDb, waitUntil, type RuntimeKind } from "./_helpers.ts";

const HOLD = "ORCH_TEST_HOLD_LOCK_UNTIL";

/** A live process that is not orch, to own hand-made locks. */
function liveProcess(): ChildProcess {
  return spawn("sleep", ["600"], { stdio: "ignore" });
}

function writeLock(lockPath: string, pid: number, createdAt: number): void {
  writeFileSync(lockPath, JSON.stringify({ token: "f".repeat(32), pid, host: hostname(), created_at: createdAt }));
}

function lockPid(lockPath: string): number | undefined {
  try {
    return JSON.parse(readFileSync(lockPath, "utf8")).pid;
  } catch {
    return undefined;
  }
}

function bodies(db: string): string[] {
  return sqlite3(db, "SELECT body FROM messages ORDER BY id").split("\n").filter(Boolean);
}

/** Only the database itself (and the tests' gate files) may remain: no lock, no temp file, no lock staging file. */
function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((f) => f !== "coord.db" && !f.startsWith("gate") && !f.startsWith("never-opened"));
}

describe("write lock through the CLI", () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });

  test("a lock left by a killed writer is broken at once and reported on stderr", async () => {
    const t = tempDb();
    try {
      const lockPath = `${t.db}.lock`;
      const gate = path.join(t.dir, "never-opened");
      // the writer holds the lock, with its new state computed, until killed
      const writer = runAsync(["--db", t.db, "--json", "send", "--to", "w1", "--body", "dies holding"], {
        entry: "inbox",
        env: { [HOLD]: gate },
      });
      children.push(writer.child);
      const pid = writer.child.pid!;
      await waitUntil(() => existsSync(`${gate}.waiting`), "the writer to hold the lock");
      expect(lockPid(lockPath)).toBe(pid);
      writer.child.kill("SIGKILL");
      await writer;

      // a huge stale threshold: only the dead pid can justify breaking it
      const r = t.cli.inbox("--lock-stale-ms", "3600000", "--lock-timeout-ms", "60000", "send", "--to", "w1", "--body", "after the crash");
      ok(r);
      expect(r.stderr).toContain("broke a stale lock");
      expect(r.stderr).toContain(`pid ${pid}`);
      expect(r.stderr).toContain("no longer running");
      expect(bodies(t.db)).toEqual(["after the crash"]);
      expect(sqlite3(t.db, "pragma integrity_check")).toBe("ok");
      expect(leftovers(t.dir)).toEqual([]);
    } finally {
      t.cleanup();
    }
  });

  test("a lock held by a live process makes a writer wait, then fail with busy; the lock and the file are untouched", async () => {
    const t = tempDb();
    const owner = liveProcess();
    children.push(owner);
    try {
      ok(t.cli.inbox("send", "--to", "w1", "--body", "before"));
      const lockPath = `${t.db}.lock`;
      writeLock(lockPath, owner.pid!, Date.now());
      const lockBytes = sha256File(lockPath);
      const dbBytes = sha256File(t.db);

      const r = t.cli.inbox("--lock-timeout-ms", "800", "--lock-stale-ms", "3600000", "send", "--to", "w1", "--body", "blocked");
      const err = fails(r, "busy");
      expect(r.code).toBe(6);
      expect(err.message).toContain(`pid ${owner.pid}`);
      expect(err.message).toContain("800 ms");
      expect(err.hint).toContain("--lock-timeout-ms");
      expect(sha256File(lockPath)).toBe(lockBytes);
      expect(sha256File(t.db)).toBe(dbBytes);

      // a writer with time to spare is still waiting while the lock is held, and proceeds once it is gone
      const waiting = t.cli.inboxAsync("--lock-timeout-ms", "60000", "--lock-stale-ms", "3600000", "send", "--to", "w1", "--body", "waited");
      children.push(waiting.child);
      await new Promise((r) => setTimeout(r, 700));
      expect(waiting.child.exitCode).toBe(null);
      expect(sha256File(t.db)).toBe(dbBytes);
      unlinkSync(lockPath);
      ok(await waiting);
      expect(bodies(t.db)).toEqual(["before", "waited"]);
      expect(leftovers(t.dir)).toEqual([]);
    } finally {
      owner.kill("SIGKILL");
      t.cleanup();
    }
  });

  test("readers take no lock: show and list succeed while a live process holds it", () => {
    const t = tempDb();
    const owner = liveProcess();
    children.push(owner);
    try {
      ok(t.cli.inbox("send", "--to", "w1", "--body", "readable"));
      const lockPath = `${t.db}.lock`;
      writeLock(lockPath, owner.pid!, Date.now());
      const lockBytes = sha256File(lockPath);
      const dbBytes = sha256File(t.db);
      expect(ok(t.cli.inbox("--lock-timeout-ms", "0", "show", "--thread", "1")).messages[0].body).toBe("readable");
      expect(ok(t.cli.inbox("--lock-timeout-ms", "0", "list")).threads.length).toBe(1);
      expect(sha256File(lockPath)).toBe(lockBytes);
      expect(sha256File(t.db)).toBe(dbBytes);
    } finally {
      owner.kill("SIGKILL");
      t.cleanup();
    }
  });

  test("a lock older than --lock-stale-ms is broken even though its owner is alive", () => {
    const t = tempDb();
    const owner = liveProcess();
    children.push(owner);
    try {
      const lockPath = `${t.db}.lock`;
      const old = Date.now() - 120_000;
      writeLock(lockPath, owner.pid!, old);
      utimesSync(lockPath, old / 1000, old / 1000);
      const r = t.cli.inbox("--lock-stale-ms", "60000", "--lock-timeout-ms", "60000", "send", "--to", "w1", "--body", "after breaking");
      ok(r);
      expect(r.stderr).toContain("broke a stale lock");
      expect(r.stderr).toContain("stale threshold");
      expect(bodies(t.db)).toEqual(["after breaking"]);
      expect(leftovers(t.dir)).toEqual([]);
    } finally {
      owner.kill("SIGKILL");
      t.cleanup();
    }
  });

  /**
   * A writer holds the lock, stops at `at` (with its new state computed), gets SIGSTOP; another
   * writer judges the lock stale after 300 ms, breaks it and writes; then the first gets SIGCONT.
   */
  async function fencingScenario(at: "before_write" | "after_fence", runtime: RuntimeKind = "node") {
    const t = tempDb(runtime);
    try {
      ok(t.cli.inbox("send", "--to", "w1", "--body", "first"));
      const lockPath = `${t.db}.lock`;
      const gate = path.join(t.dir, "gate");
      const paused = runAsync(["--db", t.db, "--json", "--lock-stale-ms", "3600000", "send", "--to", "w1", "--body", "paused"], {
        runtime,
        entry: "inbox",
        env: { [HOLD]: gate, ORCH_TEST_HOLD_AT: at },
      });
      children.push(paused.child);
      const pid = paused.child.pid!;
      await waitUntil(() => existsSync(`${gate}.waiting`), `the paused writer to reach ${at}`);
      expect(lockPid(lockPath)).toBe(pid);
      // the binary's working copy is a temp file from the start
      if (at === "after_fence" || runtime === "binary") expect(readdirSync(t.dir).some((f) => f.startsWith(`coord.db.tmp-${pid}-`))).toBe(true);
      paused.child.kill("SIGSTOP");
      writeFileSync(gate, "");

      const second = t.cli.inbox("--lock-stale-ms", "300", "--lock-timeout-ms", "60000", "send", "--to", "w1", "--body", "second");
      ok(second);
      expect(second.stderr).toContain("broke a stale lock");
      expect(second.stderr).toContain(`pid ${pid}`);
      const afterSecond = sha256File(t.db);

      paused.child.kill("SIGCONT");
      const r = await paused;
      expect(r.code).toBe(6);
      expect(r.json?.error?.code).toBe("lock_lost");
      expect(sha256File(t.db)).toBe(afterSecond);
      expect(bodies(t.db)).toEqual(["first", "second"]);
      expect(sqlite3(t.db, "pragma integrity_check")).toBe("ok");
      expect(existsSync(lockPath)).toBe(false);
      expect(leftovers(t.dir)).toEqual([]);
      // and the next write works as usual
      ok(t.cli.inbox("send", "--to", "w1", "--body", "third"));
    } finally {
      t.cleanup();
    }
  }

  test("fencing: a writer stopped (SIGSTOP) holding the lock, whose lock is then broken, fails with lock_lost and writes nothing", () =>
    fencingScenario("before_write"));

  test("fencing: the same when it is stopped after its fence check, right before the rename (its temp file is removed)", () =>
    fencingScenario("after_fence"));

  // the binary's SQLite works on a temp copy the breaking writer removes: it must end in lock_lost too, not in a file error
  for (const at of ["before_write", "after_fence"] as const) {
    test.runIf(RUNTIMES.includes("binary"))(`fencing with the compiled binary (${at}): lock_lost, nothing written`, () => fencingScenario(at, "binary"));
  }
});
