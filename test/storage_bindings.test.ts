/**
 * The compiled binary opens database files with Bun's built-in SQLite, Deno
 * with its node:sqlite, the Node bundle with sql.js (lib/sqlite.ts). All must
 * share one file: the same rows, the same lock and rename protocol, no lock
 * for reads, and the built-in bindings' special cases (a private copy for dry
 * runs and old schemas).
 */
import { afterAll, describe, expect, test } from "vitest";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { cliFor, ok, run, runAsync, RUNTIMES, sha256File, sqlite3, tempDb, waitUntil } from "./_helpers.ts";

const dbs: { cleanup: () => void }[] = [];
afterAll(() => dbs.forEach((d) => d.cleanup()));

function fresh() {
  const t = tempDb("binary");
  dbs.push(t);
  return { ...t, node: cliFor(t.db, "node"), bin: cliFor(t.db, "binary") };
}

describe.runIf(RUNTIMES.includes("binary") && RUNTIMES.includes("deno"))("the binary's SQLite (bun:sqlite) and sql.js share one database", () => {
  test("--version names the binding: bun:sqlite in the binary, node:sqlite in Deno, sql.js in the Node bundle and with ORCH_SQLITE=sqljs", () => {
    const bin = ok(run(["--version", "--json"], { runtime: "binary" }));
    const node = ok(run(["--version", "--json"], { runtime: "node" }));
    const deno = ok(run(["--version", "--json"], { runtime: "deno" }));
    const forced = ok(run(["--version", "--json"], { runtime: "binary", env: { ORCH_SQLITE: "sqljs" } }));
    expect(bin).toMatchObject({ runtime: "bun", compiled: true, sqlite_binding: "bun:sqlite" });
    expect(node).toMatchObject({ runtime: "node", sqlite_binding: "sql.js" });
    expect(deno).toMatchObject({ runtime: "deno", sqlite_binding: "node:sqlite" });
    expect(forced).toMatchObject({ runtime: "bun", sqlite_binding: "sql.js" });
    expect(bin.sqlite).toBe(node.sqlite); // Bun ships the same SQLite release as sql.js
  });

  test("writes alternate between the binary, the bundle, Deno and the binary forced to sql.js: every row in every view, file intact", () => {
    const t = fresh();
    const writers = [t.bin, t.node, cliFor(t.db, "deno")];
    const sqljsBin = (...args: string[]) => run(["--db", t.db, "--json", ...args], { runtime: "binary", entry: "inbox", env: { ORCH_SQLITE: "sqljs" } });
    ok(t.bin.orch("run", "init", "--run", "r", "--goal", "interop"));
    ok(t.node.orch("task", "add", "--run", "r", "--task", "T1", "--title", "one", "--default-to", "w1"));
    ok(t.bin.orch("task", "add", "--run", "r", "--task", "T2", "--title", "two", "--default-to", "w1"));
    ok(t.node.orch("dep", "add", "--run", "r", "--task", "T2", "--depends-on", "T1"));
    ok(t.node.orch("dispatch", "--run", "r", "--task", "T1", "--execution-mode", "analysis"));
    const claim = ok(t.bin.inbox("claim", "--as", "w1"));
    const token = claim.lease.token as string;
    for (let i = 0; i < 9; i++) {
      const body = `progress ${i}`;
      if (i % 3 === 2) ok(sqljsBin("progress", "--token", token, "--body", body));
      else ok(writers[i % 3]!.inbox("progress", "--token", token, "--body", body));
    }
    ok(t.node.inbox("done", "--token", token, "--body", "finished"));
    for (const view of [t.bin, t.node, cliFor(t.db, "deno")]) {
      const st = ok(view.orch("status", "--run", "r"));
      expect(st.tasks.map((x: any) => [x.id, x.status, x.ready])).toEqual([["T1", "done", false], ["T2", "pending", true]]);
      const thread = ok(view.inbox("show", "--thread", String(claim.thread.id)));
      expect(thread.messages.filter((m: any) => m.kind === "progress").map((m: any) => m.body)).toEqual(Array.from({ length: 9 }, (_, i) => `progress ${i}`));
    }
    expect(sqlite3(t.db, "PRAGMA integrity_check")).toBe("ok");
    expect(readdirSync(t.dir).sort()).toEqual(["coord.db"]);
  });

  test("a binary reader takes no lock: it answers while a writer holds the lock, and sees the state before that write", async () => {
    const t = fresh();
    ok(t.bin.inbox("send", "--to", "w1", "--body", "first"));
    const gate = `${t.dir}/gate`;
    const held = runAsync(["--db", t.db, "--json", "send", "--thread", "1", "--body", "held back"], {
      runtime: "binary",
      entry: "inbox",
      env: { ORCH_TEST_HOLD_LOCK_UNTIL: gate },
    });
    try {
      await waitUntil(() => existsSync(`${gate}.waiting`), "the writer to hold the lock");
      const seen = ok(t.bin.inbox("--lock-timeout-ms", "0", "show", "--thread", "1"));
      expect(seen.messages.map((m: any) => m.body)).toEqual(["first"]);
      const busy = t.bin.inbox("--lock-timeout-ms", "0", "send", "--thread", "1", "--body", "refused");
      expect(busy.json.error.code).toBe("busy");
    } finally {
      writeFileSync(gate, "");
    }
    ok(await held);
    expect(ok(t.node.inbox("show", "--thread", "1")).messages.map((m: any) => m.body)).toEqual(["first", "held back"]);
  });

  test("an older schema is read by the binary without writing; the next write migrates it", () => {
    const t = fresh();
    ok(t.bin.inbox("send", "--to", "w1", "--body", "from version 1"));
    sqlite3(t.db, "DROP INDEX messages_decisive; PRAGMA user_version = 1;");
    const before = sha256File(t.db);
    expect(ok(t.bin.inbox("show", "--thread", "1")).messages[0].body).toBe("from version 1");
    expect(sha256File(t.db)).toBe(before);
    ok(t.bin.inbox("send", "--thread", "1", "--body", "migrated"));
    expect(sqlite3(t.db, "PRAGMA user_version")).toBe("2");
    expect(sqlite3(t.db, "SELECT count(*) FROM sqlite_master WHERE name = 'messages_decisive'")).toBe("1");
  });

  test("archive --dry-run under the binary measures on a private copy and leaves the file alone", () => {
    const t = fresh();
    ok(t.bin.orch("run", "init", "--run", "old", "--goal", "finished work"));
    ok(t.bin.orch("task", "add", "--run", "old", "--task", "T1", "--title", "t"));
    ok(t.bin.orch("cancel", "--run", "old"));
    const before = sha256File(t.db);
    const r = ok(t.bin.orch("archive", "--run", "old", "--to", `${t.dir}/archive.db`, "--dry-run"));
    expect(r).toMatchObject({ run_id: "old", dry_run: true });
    expect(r.moved.tasks).toBe(1);
    expect(sha256File(t.db)).toBe(before);
    expect(existsSync(`${t.dir}/archive.db`)).toBe(false);
  });
});
