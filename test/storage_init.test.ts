/**
 * `inbox init` through the CLI: running it again keeps all data (and does not
 * even rewrite the file); an older schema version is migrated, data kept.
 */
import { describe, expect, test } from "vitest";
import { statSync } from "node:fs";
import * as path from "node:path";
import { cliFor, fails, ok, sha256File, sqlite3, tempDb, tempDir } from "./_helpers.ts";

describe("inbox init", () => {
  test("init twice keeps all data and leaves the file untouched", () => {
    const t = tempDb();
    try {
      ok(t.cli.inbox("send", "--to", "w1", "--body", "kept"));
      ok(t.cli.inbox("send", "--thread", "1", "--from", "w1", "--body", "also kept"));
      const before = { sha: sha256File(t.db), ino: statSync(t.db).ino };
      const again = ok(t.cli.inbox("init"));
      expect(again).toMatchObject({ created: false, migrated_from: null, db: t.db });
      expect({ sha: sha256File(t.db), ino: statSync(t.db).ino }).toEqual(before);
      expect(ok(t.cli.inbox("show", "--thread", "1")).messages.map((m: any) => m.body)).toEqual(["kept", "also kept"]);
    } finally {
      t.cleanup();
    }
  });

  test("4 simultaneous inits of a new path: exactly one creates it, all succeed", async () => {
    const t = tempDir();
    try {
      const db = path.join(t.dir, "coord.db");
      const cli = cliFor(db);
      const results = await Promise.all(Array.from({ length: 4 }, () => cli.inboxAsync("--lock-timeout-ms", "60000", "init")));
      for (const r of results) expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(results.filter((r) => r.json.created).length).toBe(1);
      expect(sqlite3(db, "pragma integrity_check")).toBe("ok");
      ok(cli.inbox("send", "--to", "w1", "--body", "works"));
    } finally {
      t.cleanup();
    }
  });

  test("a file of an older schema version (an empty version-0 SQLite file) is migrated by init; writes refuse it before that", () => {
    const t = tempDir();
    try {
      const db = path.join(t.dir, "coord.db");
      sqlite3(db, "CREATE TABLE t (x); DROP TABLE t;");
      expect(sqlite3(db, "PRAGMA user_version")).toBe("0");
      const cli = cliFor(db);
      const before = sha256File(db);
      expect(fails(cli.inbox("send", "--to", "w1", "--body", "too early"), "db_invalid").hint).toMatch(/init/);
      expect(sha256File(db)).toBe(before);
      const r = ok(cli.inbox("init"));
      expect(r).toMatchObject({ created: false, migrated_from: 0 });
      expect(Number(sqlite3(db, "PRAGMA user_version"))).toBe(r.schema_version);
      ok(cli.inbox("send", "--to", "w1", "--body", "now it works"));
      expect(sqlite3(db, "pragma integrity_check")).toBe("ok");
    } finally {
      t.cleanup();
    }
  });
});
