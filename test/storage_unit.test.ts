/**
 * Unit tests of the storage engine and the lock, importing lib/ directly:
 * edge cases that are hard to reach through the CLI.
 */
import { afterAll, describe, expect, test } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, lstatSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import * as path from "node:path";
import { acquireLock, lockPathFor, removeLockLeftovers } from "../lib/lock.ts";
import { initDatabase, readSnapshot, writeTransaction } from "../lib/storage.ts";
import { migrate, SCHEMA_VERSION, schemaVersion } from "../lib/schema.ts";
import { openBytes } from "../lib/sqlite.ts";
import { OrchError } from "../lib/errors.ts";
import { sha256File, tempDir } from "./_helpers.ts";

const dirs: { cleanup: () => void }[] = [];
afterAll(() => dirs.forEach((d) => d.cleanup()));

function scratch(): { dir: string; db: string; lock: string } {
  const t = tempDir("orch-unit-");
  dirs.push(t);
  const db = path.join(t.dir, "coord.db");
  return { dir: t.dir, db, lock: lockPathFor(db) };
}

/** A pid that no process has any more (a child that ran and was reaped). */
function deadPid(): number {
  return spawnSync("true").pid!;
}

function age(file: string, ms: number): void {
  const when = (Date.now() - ms) / 1000;
  utimesSync(file, when, when);
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<OrchError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(OrchError);
    expect((err as OrchError).code).toBe(code);
    return err as OrchError;
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

const quick = { timeoutMs: 150, staleMs: 60_000 };

describe("lock: lockfiles that cannot be read are judged by their age", () => {
  for (const [name, contents] of [
    ["garbage", "not json at all {"],
    ["empty (a writer died mid-create)", ""],
    ["partial JSON", '{"token":"abc","pid":'],
    ["JSON with an invalid pid", JSON.stringify({ token: "t", pid: -1, host: hostname(), created_at: Date.now() })],
    ["JSON with a non-numeric pid", JSON.stringify({ token: "t", pid: "x", host: hostname(), created_at: Date.now() })],
  ] as const) {
    test(`${name}: recent → busy and untouched; old → broken with a warning`, async () => {
      const s = scratch();
      writeFileSync(s.lock, contents);
      const before = sha256File(s.lock);
      await rejectsWith(acquireLock(s.db, quick), "busy");
      expect(sha256File(s.lock)).toBe(before);

      age(s.lock, 120_000);
      const warnings: string[] = [];
      const h = await acquireLock(s.db, { ...quick, onWarning: (m) => warnings.push(m) });
      expect(h.brokeStale).toBe(true);
      expect(warnings.join("\n")).toMatch(/broke a stale lock .*past the 60000 ms stale threshold/);
      expect(JSON.parse(readFileSync(s.lock, "utf8")).token).toBe(h.token);
      h.release();
      expect(existsSync(s.lock)).toBe(false);
    });
  }

  test("a created_at in the future (clock skew) does not keep an old lock alive", async () => {
    const s = scratch();
    const sleeper = spawn("sleep", ["600"], { stdio: "ignore" });
    try {
      writeFileSync(s.lock, JSON.stringify({ token: "t", pid: sleeper.pid, host: hostname(), created_at: Date.now() + 3_600_000 }));
      age(s.lock, 120_000);
      const h = await acquireLock(s.db, quick);
      expect(h.brokeStale).toBe(true);
      h.release();
    } finally {
      sleeper.kill("SIGKILL");
    }
  });
});

describe("lock: owners", () => {
  test("a dead owner on this host is broken at once; on another host it waits for the stale threshold", async () => {
    const s = scratch();
    const pid = deadPid();
    writeFileSync(s.lock, JSON.stringify({ token: "t", pid, host: "some-other-host", created_at: Date.now() }));
    await rejectsWith(acquireLock(s.db, quick), "busy");
    writeFileSync(s.lock, JSON.stringify({ token: "t", pid, host: hostname(), created_at: Date.now() }));
    const warnings: string[] = [];
    const h = await acquireLock(s.db, { ...quick, onWarning: (m) => warnings.push(m) });
    expect(warnings.join("\n")).toContain(`pid ${pid}`);
    expect(warnings.join("\n")).toContain("no longer running");
    h.release();
  });

  test("release never deletes someone else's lock; verify then reports lock_lost", async () => {
    const s = scratch();
    const h = await acquireLock(s.db, quick);
    // our lock was broken and another writer took it
    const theirs = JSON.stringify({ token: "theirs", pid: process.pid, host: hostname(), created_at: Date.now() });
    writeFileSync(`${s.lock}.new`, theirs);
    spawnSync("mv", [`${s.lock}.new`, s.lock]);
    expect(() => h.verify()).toThrow(expect.objectContaining({ code: "lock_lost" }));
    h.release();
    expect(readFileSync(s.lock, "utf8")).toBe(theirs);
    expect(readdirSync(s.dir).sort()).toEqual(["coord.db.lock"]);
  });

  test("release removes our own lock and leaves no side files", async () => {
    const s = scratch();
    const h = await acquireLock(s.db, quick);
    h.verify();
    h.release();
    expect(readdirSync(s.dir)).toEqual([]);
    // a second acquire works at once
    (await acquireLock(s.db, quick)).release();
  });

  test("removeLockLeftovers removes side files of dead processes only", async () => {
    const s = scratch();
    const sleeper = spawn("sleep", ["600"], { stdio: "ignore" });
    try {
      const dead = deadPid();
      const names = {
        deadStage: `coord.db.lock.stage-${dead}-abcdef`,
        deadBroken: `coord.db.lock.broken-${dead}-abcdef`,
        liveStage: `coord.db.lock.stage-${sleeper.pid}-abcdef`,
        liveBroken: `coord.db.lock.broken-${sleeper.pid}-abcdef`,
        other: `coord.db.lock.stage-notapid`,
        otherDb: `other.db.lock.stage-${dead}-abcdef`,
      };
      for (const n of Object.values(names)) writeFileSync(path.join(s.dir, n), "x");
      removeLockLeftovers(s.db);
      expect(readdirSync(s.dir).sort()).toEqual([names.liveBroken, names.liveStage, names.other, names.otherDb].sort());
    } finally {
      sleeper.kill("SIGKILL");
    }
  });
});

describe("writeTransaction", () => {
  async function initialised() {
    const s = scratch();
    await initDatabase(s.db);
    await writeTransaction(s.db, (db) => db.run("INSERT INTO runs (id, goal, created_at, updated_at) VALUES ('r1', 'g', 1, 1)"));
    return s;
  }

  test("a transaction that changes nothing does not rewrite the file", async () => {
    const s = await initialised();
    const before = { sha: sha256File(s.db), ino: statSync(s.db).ino, mtime: statSync(s.db).mtimeMs };
    const n = await writeTransaction(s.db, (db) => db.value<number>("SELECT count(*) FROM runs"));
    expect(n).toBe(1);
    // an UPDATE that matches no row changes nothing either
    await writeTransaction(s.db, (db) => db.run("UPDATE runs SET goal = 'x' WHERE id = 'nope'"));
    expect({ sha: sha256File(s.db), ino: statSync(s.db).ino, mtime: statSync(s.db).mtimeMs }).toEqual(before);
    expect(readdirSync(s.dir)).toEqual(["coord.db"]);
  });

  test("a transaction that throws writes nothing and releases the lock", async () => {
    const s = await initialised();
    const before = sha256File(s.db);
    await expect(
      writeTransaction(s.db, (db) => {
        db.run("INSERT INTO runs (id, goal, created_at, updated_at) VALUES ('r2', 'g', 1, 1)");
        throw new OrchError("conflict", "changed my mind");
      }),
    ).rejects.toThrow("changed my mind");
    expect(sha256File(s.db)).toBe(before);
    expect(readdirSync(s.dir)).toEqual(["coord.db"]);
  });

  test("a change replaces the file atomically (new inode) and leaves no side files", async () => {
    const s = await initialised();
    const ino = statSync(s.db).ino;
    await writeTransaction(s.db, (db) => db.run("UPDATE runs SET goal = 'new' WHERE id = 'r1'"));
    expect(statSync(s.db).ino).not.toBe(ino);
    expect(readdirSync(s.dir)).toEqual(["coord.db"]);
    const db = await readSnapshot(s.db);
    try {
      expect(db.value("SELECT goal FROM runs")).toBe("new");
    } finally {
      db.close();
    }
  });

  test("temp files and lock side files left by dead writers are removed by the next write", async () => {
    const s = await initialised();
    const dead = deadPid();
    writeFileSync(path.join(s.dir, `coord.db.tmp-${dead}-00ff`), "half a database");
    writeFileSync(path.join(s.dir, `coord.db.lock.stage-${dead}-00ff`), "{}");
    await writeTransaction(s.db, (db) => db.value("SELECT 1"));
    expect(readdirSync(s.dir)).toEqual(["coord.db"]);
  });
});

describe("schema", () => {
  test("an empty version-0 SQLite file is migrated by init; readers refuse it until then", async () => {
    const s = scratch();
    const empty = await openBytes();
    empty.exec("PRAGMA user_version = 0");
    writeFileSync(s.db, empty.export());
    empty.close();
    if (statSync(s.db).size === 0) {
      // sql.js exports an empty database as zero bytes: give it a page so it is a real SQLite file
      spawnSync("sqlite3", [s.db, "CREATE TABLE t (x); DROP TABLE t;"]);
    }
    await rejectsWith(readSnapshot(s.db), "db_invalid");
    const r = await initDatabase(s.db);
    expect(r).toMatchObject({ created: false, migrated_from: 0, schema_version: SCHEMA_VERSION });
    const db = await readSnapshot(s.db);
    try {
      expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
      expect(db.value("SELECT count(*) FROM messages")).toBe(0);
    } finally {
      db.close();
    }
  });

  test("migrate() brings a version-0 database to the current version once, and refuses newer ones", async () => {
    const db = await openBytes();
    try {
      expect(migrate(db, "mem.db")).toBe(true);
      expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
      expect(migrate(db, "mem.db")).toBe(false);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
      expect(() => migrate(db, "mem.db")).toThrow(expect.objectContaining({ code: "db_too_new" }));
    } finally {
      db.close();
    }
  });
});

describe("a symlinked database", () => {
  test("writes go through the link to the one real file, which keeps its name and lock", async () => {
    const s = scratch();
    await initDatabase(s.db);
    const link = path.join(s.dir, "link.db");
    symlinkSync(s.db, link);
    await writeTransaction(link, (db) => db.run("INSERT INTO runs (id, goal, created_at, updated_at) VALUES ('via-link', 'g', 1, 1)"));
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    const db = await readSnapshot(s.db);
    try {
      expect(db.value("SELECT id FROM runs")).toBe("via-link");
    } finally {
      db.close();
    }
    expect(readdirSync(s.dir).sort()).toEqual(["coord.db", "link.db"]);
    expect((await initDatabase(link)).path).toBe(link);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });
});
