/**
 * No write is lost under concurrency: 16 processes start at once, each making
 * 25 `inbox send` writes, every write a separate CLI process. A lock-free
 * reader runs alongside and only ever sees whole states. When this host has
 * the compiled binary, half the writers and reads use it, so the two SQLite
 * bindings (sql.js in the Node bundle, Bun's SQLite in the binary) share one
 * file under contention.
 */
import { afterAll, describe, expect, test } from "vitest";
import { cliFor, ok, RUNTIMES, sqlite3, tempDb, type RunResult, type RuntimeKind } from "./_helpers.ts";

const PROCESSES = 16;
const WRITES = 25;

describe("16 concurrent writers x 25 sends", () => {
  const t = tempDb();
  afterAll(() => t.cleanup());
  const kinds: RuntimeKind[] = RUNTIMES.includes("binary") ? ["node", "binary"] : ["node"];
  const cliOf = (i: number) => cliFor(t.db, kinds[i % kinds.length]);

  // 401 CLI processes at ~0.15 s of CPU each: about 30 s on two idle cores, far more on a busy machine
  test("all 400 messages are present, ids strictly increasing, integrity ok", { timeout: 600_000 }, async () => {
    // thread 1 exists so half the writers can reply on one shared thread
    const first = ok(t.cli.inbox("send", "--to", "w-shared", "--body", "shared thread"));
    expect(first.message.id).toBe(1);

    const lockFlags = ["--lock-timeout-ms", "300000"];
    const writer = async (p: number): Promise<{ body: string; r: RunResult }[]> => {
      const out: { body: string; r: RunResult }[] = [];
      for (let i = 0; i < WRITES; i++) {
        const body = `writer ${p} message ${i}`;
        const target = p % 2 === 0 ? ["--to", `w${p}`] : ["--thread", "1", "--from", `w${p}`];
        out.push({ body, r: await cliOf(p >> 1).inboxAsync(...lockFlags, "send", ...target, "--body", body) });
      }
      return out;
    };
    // meanwhile a reader (no lock) must always see a whole state, never a partial one, never going back
    let writing = true;
    const reader = async (): Promise<number[]> => {
      const seen: number[] = [];
      while (writing && seen.length < 40) {
        const r = await cliOf(seen.length).inboxAsync("--lock-timeout-ms", "0", "show", "--thread", "1");
        expect(r.code, r.stdout + r.stderr).toBe(0);
        seen.push(r.json.messages.length);
      }
      return seen;
    };
    // all 16 loops start in the same tick
    const reads = reader();
    const results = await Promise.all(Array.from({ length: PROCESSES }, (_, p) => writer(p)));
    writing = false;
    const seen = await reads;
    expect(seen.length).toBeGreaterThan(0);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]!);

    const failures = results.flat().filter(({ r }) => r.code !== 0 || r.json?.ok !== true);
    expect(failures.map(({ r }) => `${r.code}: ${r.stdout}${r.stderr}`)).toEqual([]);

    // each writer saw its own ids strictly increase, and each id names its body
    const byId = new Map<number, string>();
    for (const perWriter of results) {
      const ids = perWriter.map(({ r }) => r.json.message.id as number);
      for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1]!);
      for (const { body, r } of perWriter) {
        expect(r.json.message.body).toBe(body);
        expect(byId.has(r.json.message.id)).toBe(false);
        byId.set(r.json.message.id, body);
      }
    }
    expect(byId.size).toBe(PROCESSES * WRITES);

    // the file itself: ids 1..401 without gaps, each with the body its writer was told
    const rows = sqlite3(t.db, "SELECT id || '|' || body FROM messages ORDER BY id").split("\n");
    expect(rows.length).toBe(PROCESSES * WRITES + 1);
    rows.forEach((row, i) => {
      const [id, body] = row.split("|");
      expect(Number(id)).toBe(i + 1);
      if (i > 0) expect(body).toBe(byId.get(i + 1));
    });
    expect(sqlite3(t.db, "pragma integrity_check")).toBe("ok");

    // the CLI reads them back too
    const shared = ok(t.cli.inbox("show", "--thread", "1"));
    expect(shared.messages.length).toBe(1 + (PROCESSES / 2) * WRITES);
    const threads = ok(t.cli.inbox("list", "--limit", "10000")).threads;
    expect(threads.length).toBe(1 + (PROCESSES / 2) * WRITES);
  });
});
