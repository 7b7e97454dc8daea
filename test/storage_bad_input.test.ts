/**
 * Bad input gets a clear error and changes nothing: for each case, the error
 * code, and the bytes of every file in the database's directory (and the list
 * of files: no lock or temp file left behind) before and after.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, statfsSync, truncateSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { cliFor, fails, ok, RUNTIMES, sha256File, sqlite3, tempDb, tempDir, type RuntimeKind } from "./_helpers.ts";
import { LIMITS } from "../lib/validate.ts";

/** Every entry of a directory with the sha256 of each file (directories listed by name). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    const st = statSync(p);
    out[name] = st.isDirectory() ? `dir:${readdirSync(p).sort().join(",")}` : st.isFile() ? sha256File(p) : `special:${st.ino}`;
  }
  return out;
}

/** Runs the commands, asserting each fails with `code`, and that nothing in `dir` changed. */
function refusedUnchanged(dir: string, db: string, code: string, commands: string[][], runtime: RuntimeKind = "node"): any[] {
  const before = snapshot(dir);
  const cli = cliFor(db, runtime);
  const errors = commands.map((args) => {
    const r = args[0] === "orch" ? cli.orch(...args.slice(1)) : cli.inbox(...args);
    const err = fails(r, code);
    expect(err.message.length).toBeGreaterThan(10);
    return err;
  });
  expect(snapshot(dir)).toEqual(before);
  return errors;
}

const WRITE = ["send", "--to", "w1", "--body", "should not land"];
const REPLY = ["send", "--thread", "1", "--body", "should not land"];
const READS = [["show", "--thread", "1"], ["list"]];

describe("bad database paths and files are refused and left untouched", () => {
  const base = tempDb();
  beforeAll(() => {
    ok(base.cli.inbox("send", "--to", "w1", "--body", "existing"));
  });
  afterAll(() => base.cleanup());

  /** A fresh directory holding `file` made by `make`. */
  function fixture(make: (file: string) => void) {
    const t = tempDir();
    const file = path.join(t.dir, "coord.db");
    make(file);
    return { ...t, file };
  }

  test("missing database: db_missing, the hint says to run `inbox init`, nothing is created", () => {
    const t = tempDir();
    try {
      const file = path.join(t.dir, "coord.db");
      const errors = refusedUnchanged(t.dir, file, "db_missing", [WRITE, REPLY, ...READS]);
      for (const e of errors) expect(e.hint).toMatch(/inbox .*init/);
      expect(readdirSync(t.dir)).toEqual([]);
      // a missing directory too
      fails(cliFor(path.join(t.dir, "nope", "coord.db")).inbox(...WRITE), "db_missing");
      expect(readdirSync(t.dir)).toEqual([]);
    } finally {
      t.cleanup();
    }
  });

  test("a path that is a directory: db_invalid, no lock file beside it", () => {
    const t = tempDir();
    try {
      const dbDir = path.join(t.dir, "coord.db");
      mkdirSync(dbDir);
      const errors = refusedUnchanged(t.dir, dbDir, "db_invalid", [WRITE, ...READS, ["init"]]);
      for (const e of errors) expect(e.message).toContain("directory");
    } finally {
      t.cleanup();
    }
  });

  test("a FIFO or a device: db_invalid at once (reading a FIFO would block forever)", () => {
    const t = tempDir();
    try {
      const fifo = path.join(t.dir, "coord.db");
      expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
      const errors = refusedUnchanged(t.dir, fifo, "db_invalid", [WRITE, ...READS, ["init"]]);
      for (const e of errors) expect(e.message).toContain("not a regular file");
      fails(cliFor("/dev/null").inbox(...WRITE), "db_invalid");
      fails(cliFor("/dev/null").inbox("init"), "db_invalid");
      expect(existsSync("/dev/null.lock")).toBe(false);
    } finally {
      t.cleanup();
    }
  });

  test("a file that is not SQLite: db_invalid", () => {
    const t = fixture((f) => writeFileSync(f, "these are my notes, not a database\n".repeat(100)));
    try {
      const errors = refusedUnchanged(t.dir, t.file, "db_invalid", [WRITE, REPLY, ...READS, ["init"]]);
      for (const e of errors) expect(e.message).toContain("not a SQLite database");
    } finally {
      t.cleanup();
    }
  });

  test("a truncated SQLite file: db_invalid (cut mid-file, and cut inside the header)", () => {
    for (const size of [Math.floor(statSync(base.db).size / 2), 4096, 60]) {
      const t = fixture((f) => {
        copyFileSync(base.db, f);
        truncateSync(f, size);
      });
      try {
        refusedUnchanged(t.dir, t.file, "db_invalid", [WRITE, REPLY, ...READS, ["init"]]);
      } finally {
        t.cleanup();
      }
    }
  });

  test("a database from a newer schema: db_too_new, telling to upgrade", () => {
    const t = fixture((f) => {
      copyFileSync(base.db, f);
      sqlite3(f, "PRAGMA user_version = 99");
    });
    try {
      expect(sqlite3(t.file, "PRAGMA user_version")).toBe("99");
      const errors = refusedUnchanged(t.dir, t.file, "db_too_new", [WRITE, REPLY, ...READS, ["init"]]);
      for (const e of errors) {
        expect(e.message).toContain("99");
        expect(e.hint).toMatch(/upgrade/);
      }
    } finally {
      t.cleanup();
    }
  });

  test("a negative schema version (no orch writes one): db_invalid", () => {
    const t = fixture((f) => {
      copyFileSync(base.db, f);
      sqlite3(f, "PRAGMA user_version = -1");
    });
    try {
      const errors = refusedUnchanged(t.dir, t.file, "db_invalid", [WRITE, REPLY, ...READS, ["init"]]);
      for (const e of errors) expect(e.message).toContain("-1");
    } finally {
      t.cleanup();
    }
  });

  test("a SQLite database that is not orch's: db_invalid", () => {
    const t = fixture((f) => sqlite3(f, "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine')"));
    try {
      const errors = refusedUnchanged(t.dir, t.file, "db_invalid", [WRITE, REPLY, ...READS, ["init"]]);
      for (const e of errors) {
        expect(e.message).toContain("not an orch database");
        expect(e.hint).not.toMatch(/initialise/);
      }
      expect(sqlite3(t.file, "SELECT body FROM notes")).toBe("mine");
    } finally {
      t.cleanup();
    }
  });

  describe("an unwritable directory or file (chattr +i: root ignores permission bits)", () => {
    const probe = tempDir();
    const immutable = spawnSync("chattr", ["+i", probe.dir]).status === 0;
    if (immutable) spawnSync("chattr", ["-i", probe.dir]);
    probe.cleanup();
    const unless = immutable ? test : test.skip;

    unless("a write into an immutable directory: db_unwritable; reads still work", () => {
      const t = fixture((f) => copyFileSync(base.db, f));
      spawnSync("chattr", ["+i", t.dir]);
      try {
        const errors = refusedUnchanged(t.dir, t.file, "db_unwritable", [WRITE, REPLY]);
        for (const e of errors) expect(e.hint).toMatch(/write access/);
        expect(ok(cliFor(t.file).inbox("show", "--thread", "1")).messages[0].body).toBe("existing");
        // init of a new database there
        fails(cliFor(path.join(t.dir, "new.db")).inbox("init"), "db_unwritable");
        expect(readdirSync(t.dir)).toEqual(["coord.db"]);
      } finally {
        spawnSync("chattr", ["-i", t.dir]);
        t.cleanup();
      }
    });

    unless("a write to an immutable database file: db_unwritable, no temp file left", () => {
      const t = fixture((f) => copyFileSync(base.db, f));
      spawnSync("chattr", ["+i", t.file]);
      try {
        refusedUnchanged(t.dir, t.file, "db_unwritable", [WRITE, REPLY]);
        expect(readdirSync(t.dir)).toEqual(["coord.db"]);
      } finally {
        spawnSync("chattr", ["-i", t.file]);
        t.cleanup();
      }
    });
  });
});

describe("a full disk or a read-only file system (needs mount: root with CAP_SYS_ADMIN)", () => {
  const probe = tempDir();
  const canMount = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe.dir]).status === 0;
  if (canMount) spawnSync("umount", [probe.dir]);
  probe.cleanup();
  const unless = canMount ? test : test.skip;

  /** A small tmpfs holding a copy of a database with one message; unmounted by cleanup. */
  function mounted(extraOptions: string[] = []) {
    const t = tempDir();
    const src = tempDb();
    ok(src.cli.inbox("send", "--to", "w1", "--body", "existing"));
    expect(spawnSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", t.dir]).status).toBe(0);
    const file = path.join(t.dir, "coord.db");
    copyFileSync(src.db, file);
    src.cleanup();
    for (const o of extraOptions) expect(spawnSync("mount", ["-o", `remount,${o}`, t.dir]).status).toBe(0);
    return {
      dir: t.dir,
      file,
      cleanup: () => {
        spawnSync("umount", [t.dir]);
        t.cleanup();
      },
    };
  }

  // sql.js (Node) writes a new file; a built-in SQLite (the binary's; Deno's works alike) copies the database first
  for (const runtime of RUNTIMES.filter((r) => r !== "deno")) {
    unless(`no room for the new file (${runtime}): db_unwritable naming the full disk; no temp file left`, () => {
      const m = mounted();
      try {
        // leave two pages free: room for the lock, not for a new copy of the database
        const fs = statfsSync(m.dir);
        writeFileSync(path.join(m.dir, "filler"), Buffer.alloc(fs.bavail * fs.bsize - 8192));
        expect(statSync(m.file).size).toBeGreaterThan(8192);
        const errors = refusedUnchanged(m.dir, m.file, "db_unwritable", [WRITE, REPLY], runtime);
        for (const e of errors) expect(e.message).toContain("disk is full");
        expect(readdirSync(m.dir).sort()).toEqual(["coord.db", "filler"]);
        expect(ok(cliFor(m.file, runtime).inbox("show", "--thread", "1")).messages[0].body).toBe("existing");
      } finally {
        m.cleanup();
      }
    });

    unless(`room for a copy but not for its growth (${runtime}): db_unwritable naming the full disk; no temp file left`, () => {
      const m = mounted();
      try {
        // room for the database once more plus a little: a 60 KB message cannot fit
        const fs = statfsSync(m.dir);
        const size = statSync(m.file).size;
        writeFileSync(path.join(m.dir, "filler"), Buffer.alloc(fs.bavail * fs.bsize - size - 16384));
        const big = ["send", "--to", "w1", "--body", "x".repeat(60_000)];
        const errors = refusedUnchanged(m.dir, m.file, "db_unwritable", [big], runtime);
        expect(errors[0].message).toContain("disk is full");
        expect(readdirSync(m.dir).sort()).toEqual(["coord.db", "filler"]);
      } finally {
        m.cleanup();
      }
    });

    unless(`a read-only file system (${runtime}): db_unwritable; reads still work`, () => {
      const m = mounted(["ro"]);
      try {
        refusedUnchanged(m.dir, m.file, "db_unwritable", [WRITE, REPLY, ["init"]], runtime);
        expect(ok(cliFor(m.file, runtime).inbox("list")).threads.length).toBe(1);
      } finally {
        m.cleanup();
      }
    });
  }
});

describe("bad arguments are refused and change nothing", () => {
  const t = tempDb();
  beforeAll(() => {
    ok(t.cli.inbox("send", "--to", "w1", "--body", "existing"));
  });
  afterAll(() => t.cleanup());

  test("unknown thread: not_found", () => {
    refusedUnchanged(t.dir, t.db, "not_found", [
      ["send", "--thread", "999", "--body", "to nowhere"],
      ["show", "--thread", "999"],
    ]);
  });

  test("empty body: usage", () => {
    const errors = refusedUnchanged(t.dir, t.db, "usage", [
      ["send", "--to", "w1", "--body", ""],
      ["send", "--to", "w1", "--body", "  \n\t "],
      ["send", "--thread", "1", "--body", ""],
      ["send", "--to", "w1"],
    ]);
    expect(errors[0].message).toContain("must not be empty");
  });

  test(`oversized body: usage above ${LIMITS.bodyBytes} bytes; exactly the limit is accepted`, () => {
    const bodies = tempDir();
    try {
      const over = path.join(bodies.dir, "over.txt");
      const exact = path.join(bodies.dir, "exact.txt");
      writeFileSync(over, "x".repeat(LIMITS.bodyBytes + 1));
      // multi-byte characters count in bytes, not characters
      writeFileSync(exact, "é".repeat(LIMITS.bodyBytes / 2));
      const errors = refusedUnchanged(t.dir, t.db, "usage", [
        ["send", "--to", "w1", "--body-file", over],
        ["send", "--to", "w1", "--body", "é".repeat(LIMITS.bodyBytes / 2 + 1)],
      ]);
      expect(errors[0].message).toContain(String(LIMITS.bodyBytes));
      const accepted = ok(t.cli.inbox("send", "--to", "w1", "--body-file", exact));
      expect(accepted.message.body.length).toBe(LIMITS.bodyBytes / 2);
    } finally {
      bodies.cleanup();
    }
  });

  test("invalid ids and thread numbers: usage", () => {
    const errors = refusedUnchanged(t.dir, t.db, "usage", [
      ["send", "--to", "../x", "--body", "b"],
      ["send", "--to", "-rf", "--body", "b"],
      ["send", "--to", "", "--body", "b"],
      ["send", "--to", "a b", "--body", "b"],
      ["send", "--to", "w1.lock", "--body", "b"],
      ["send", "--to", "x".repeat(65), "--body", "b"],
      ["send", "--to", "w1", "--from", "evil/../x", "--body", "b"],
      ["send", "--thread", "abc", "--body", "b"],
      ["send", "--thread", "0", "--body", "b"],
      ["send", "--thread", "-1", "--body", "b"],
      ["show", "--thread", "1.5"],
    ]);
    expect(errors[0].message).toContain("--to");
  });
});
