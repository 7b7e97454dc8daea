/**
 * Eight processes claim the same thread at the same moment: exactly one wins,
 * every round. Every runtime this host has (Node bundle, Deno, compiled
 * binary) is among the claimers, so the lock is raced across runtimes too.
 */
import { expect, test } from "vitest";
import { cliFor, fails, ok, RUNTIMES, sqlite3, tempDb } from "./_helpers.ts";

const ROUNDS = 20;
const CLAIMERS = 8;

test(`${CLAIMERS} simultaneous claims of one thread, ${ROUNDS} rounds: one winner, the rest already_claimed`, async () => {
  const t = tempDb();
  try {
    // setup through the fastest-starting runtime; it is not what is under test
    const setup = cliFor(t.db, RUNTIMES.includes("binary") ? "binary" : "node");
    // one of each runtime, the rest from the fastest-starting one (a round of 8 Node processes is slow on 2 cores)
    const fastest = RUNTIMES.includes("binary") ? "binary" : "node";
    const claimers = Array.from({ length: CLAIMERS }, (_, i) => cliFor(t.db, RUNTIMES[i] ?? fastest));
    ok(setup.orch("run", "init", "--run", "race", "--goal", "claim races"));
    for (let round = 1; round <= ROUNDS; round++) {
      // alternate a free-standing thread and an attempt's thread
      let thread: number;
      if (round % 2 === 1) {
        thread = ok(setup.inbox("send", "--to", "racer", "--body", `job ${round}`)).thread.id;
      } else {
        ok(setup.orch("task", "add", "--run", "race", "--task", `T${round}`, "--title", `task ${round}`));
        thread = ok(setup.orch("dispatch", "--run", "race", "--task", `T${round}`, "--execution-mode", "analysis", "--to", "racer")).attempt.thread_id;
      }
      const results = await Promise.all(claimers.map((c) => c.inboxAsync("claim", "--as", "racer", "--thread", String(thread), "--lease-seconds", "300")));
      const winners = results.filter((r) => r.code === 0);
      expect(winners, `round ${round}: ${results.map((r) => r.stdout + r.stderr).join("\n")}`).toHaveLength(1);
      const token = ok(winners[0]!).lease.token;
      for (const r of results.filter((r) => r.code !== 0)) {
        const err = fails(r, "already_claimed");
        expect(r.code).toBe(4);
        expect(err.message).toMatch(new RegExp(`^thread ${thread} is already claimed by racer until \\d{4}-`));
        expect(err.hint).toBeTruthy();
      }
      // the database agrees: one lease on the thread, the winner's
      expect(sqlite3(t.db, `SELECT token FROM leases WHERE thread_id = ${thread}`)).toBe(token);
      expect(sqlite3(t.db, `SELECT lease_token FROM threads WHERE id = ${thread}`)).toBe(token);
    }
    // attempt threads: exactly one task_claimed event per attempt
    expect(sqlite3(t.db, "SELECT count(*) FROM events WHERE type = 'task_claimed'")).toBe(String(ROUNDS / 2));
    expect(sqlite3(t.db, "PRAGMA integrity_check")).toBe("ok");
  } finally {
    t.cleanup();
  }
});
