/**
 * Crash safety: writers are killed with SIGKILL at random moments (before,
 * during and after their write; some while holding the lock). Afterwards the
 * file is intact, every acknowledged write is there, and the next command
 * works without repair, cleaning up what the dead left behind. Once with the
 * Node bundle (sql.js writes an in-memory image) and once with the compiled
 * binary (Bun's built-in SQLite changes a copy of the file), when this host has it.
 */
import { afterAll, describe, expect, test } from "vitest";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { ok, runAsync, RUNTIMES, sqlite3, tempDb, waitUntil, type RunResult, type RuntimeKind } from "./_helpers.ts";

const PER_BATCH = 16;
const MIN_KILLED = 50;
const MAX_BATCHES = 20;

function lockPid(lockPath: string): number | undefined {
  try {
    return JSON.parse(readFileSync(lockPath, "utf8")).pid;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Deno writes as the binary does (its built-in SQLite changes a copy of the file), only slower to start
const runtimes: RuntimeKind[] = RUNTIMES.filter((r) => r !== "deno");

describe.each(runtimes)("writers killed with SIGKILL at random moments (%s)", (runtime) => {
  const t = tempDb(runtime);
  afterAll(() => t.cleanup());

  test(`at least ${MIN_KILLED} writers killed at random: integrity ok, every acknowledged write present, next command works`, async () => {
    ok(t.cli.inbox("send", "--to", "w1", "--body", "seed"));
    const lockPath = `${t.db}.lock`;
    const acknowledged = new Map<string, number>();
    const attempted = new Set<string>(["seed"]);
    let killed = 0;
    let killedHoldingLock = 0;
    let killedWithTempFile = 0;

    // batches of 16 until enough have died. Per batch, two writers die holding the lock:
    // one with its new state computed, one with its temp file written and fenced, right
    // before the rename. Two always finish. The rest are killed at a random moment of
    // their life (starting, waiting for the lock, writing, done).
    for (let b = 0; b < MAX_BATCHES && killed < MIN_KILLED; b++) {
      const runs = Array.from({ length: PER_BATCH }, async (_, i) => {
        const body = `batch ${b} writer ${i}`;
        attempted.add(body);
        const role = i <= 1 ? "holder" : i <= 3 ? "survivor" : "victim";
        const gate = path.join(t.dir, `gate-never-opened-${b}-${i}`);
        const hold = { ORCH_TEST_HOLD_LOCK_UNTIL: gate, ORCH_TEST_HOLD_AT: i === 0 ? "before_write" : "after_fence" };
        const w = runAsync(
          ["--db", t.db, "--json", "--lock-timeout-ms", "60000", "--lock-stale-ms", "3600000", "send", "--to", `w${i}`, "--body", body],
          { runtime, entry: "inbox", env: role === "holder" ? hold : {} },
        );
        const pid = w.child.pid!;
        let exited = false;
        void w.then(() => (exited = true));
        let holding = false;
        let withTemp = false;
        if (role === "holder") {
          await waitUntil(() => existsSync(`${gate}.waiting`) || exited, "the holder to stop holding the lock", 60_000);
          holding = lockPid(lockPath) === pid;
          withTemp = readdirSync(t.dir).some((f) => f.startsWith(`coord.db.tmp-${pid}-`));
          await sleep(Math.random() * 300);
        } else if (role === "victim") {
          // a binary writer lives ~20 ms, a Node one ~150: kill within each one's lifetime under contention
          await sleep(Math.random() * (runtime === "binary" ? 300 : 1500));
        }
        if (role !== "survivor") w.child.kill("SIGKILL");
        const r: RunResult = await w;
        return { body, r, role, holding, withTemp, signal: w.child.signalCode };
      });
      for (const { body, r, role, holding, withTemp, signal } of await Promise.all(runs)) {
        // a writer either finished successfully or was killed; nothing else
        if (signal === null) {
          expect(`${r.code} ${r.stdout}${r.stderr}`).toMatch(/^0 /);
          expect(r.json.message.body).toBe(body);
          acknowledged.set(body, r.json.message.id);
        } else {
          expect(role).not.toBe("survivor");
          expect(signal).toBe("SIGKILL");
          killed++;
          if (holding) killedHoldingLock++;
          if (withTemp) killedWithTempFile++;
        }
      }
    }
    if (process.env.DEBUG_CRASH) console.log({ killed, killedHoldingLock, killedWithTempFile, acknowledged: acknowledged.size, files: readdirSync(t.dir) });
    expect(killed).toBeGreaterThanOrEqual(MIN_KILLED);
    expect(killedHoldingLock).toBeGreaterThan(0);
    expect(killedWithTempFile).toBeGreaterThan(0);
    expect(acknowledged.size).toBeGreaterThan(0);

    expect(sqlite3(t.db, "pragma integrity_check")).toBe("ok");
    const rows = sqlite3(t.db, "SELECT id || '|' || body FROM messages ORDER BY id").split("\n");
    const present = new Map(rows.map((row) => [row.slice(row.indexOf("|") + 1), Number(row.slice(0, row.indexOf("|")))]));
    expect(present.size).toBe(rows.length); // no write landed twice
    for (const [body, id] of acknowledged) expect(present.get(body)).toBe(id);
    for (const body of present.keys()) expect(attempted.has(body)).toBe(true);

    // the next command needs no repair, and leaves only the database behind
    const next = t.cli.inbox("--lock-timeout-ms", "60000", "--lock-stale-ms", "3600000", "send", "--to", "w1", "--body", "after the crashes");
    ok(next);
    expect(sqlite3(t.db, "pragma integrity_check")).toBe("ok");
    expect(readdirSync(t.dir).filter((f) => f !== "coord.db" && !f.startsWith("gate"))).toEqual([]);
    expect(ok(t.cli.inbox("show", "--thread", String(next.json.thread.id))).messages[0].body).toBe("after the crashes");
  });
});
