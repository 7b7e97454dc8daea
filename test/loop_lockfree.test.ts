/** The leader's reads (status, blocked, ready, wait) and a reconcile with nothing to fold take no lock. */
import { expect, test } from "vitest";
import { rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { fails, ok, sha256File, tempDb, waitUntil } from "./_helpers.ts";
import { plan } from "./loop_scenario.ts";

/** Holds the database's write lock as a live writer would (this test process is its owner). */
function holdLock(db: string): () => void {
  const lock = `${db}.lock`;
  writeFileSync(lock, JSON.stringify({ token: "held-by-the-test", pid: process.pid, host: hostname(), created_at: Date.now() }));
  return () => rmSync(lock, { force: true });
}

const quick = ["--lock-timeout-ms", "300"];

test("with the write lock held by a live process, reads still answer and writes report busy", async () => {
  const t = tempDb();
  try {
    const { orch, inbox } = t.cli;
    plan(t, ["A", "w1"], ["B", "w2"]);
    ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
    const c = ok(inbox("claim", "--as", "w1"));
    ok(inbox("ask", "--token", c.lease.token, "--body", "Now?"));
    ok(orch("dispatch", "--run", "r", "--task", "B", "--execution-mode", "analysis"));
    const sum = sha256File(t.db);

    let release = holdLock(t.db);
    try {
      expect(ok(orch(...quick, "blocked", "--run", "r")).blocked[0].question.body).toBe("Now?");
      expect(ok(orch(...quick, "status", "--run", "r")).tasks.map((x: any) => x.status)).toEqual(["blocked", "dispatched"]);
      expect(ok(orch(...quick, "reconcile", "--run", "r")).changed).toBe(0);
      ok(orch(...quick, "ready", "--run", "r"));
      ok(orch(...quick, "wait", "--run", "r", "--after-event", "0", "--timeout-seconds", "0"));
      ok(inbox(...quick, "show", "--thread", String(c.thread.id)));
      ok(inbox(...quick, "wait", "--as", "w1", "--timeout-seconds", "0"));
      // a write waits for the lock, and gives up with busy
      expect(fails(inbox(...quick, "progress", "--token", c.lease.token, "--body", "x"), "busy").message).toMatch(/locked by another writer/);
      expect(sha256File(t.db)).toBe(sum);
    } finally {
      release();
    }

    // once a lease has run out, status has something to fold, so it needs the lock too
    const short = ok(inbox("claim", "--as", "w2", "--lease-seconds", "1"));
    await waitUntil(() => Date.now() > Date.parse(short.lease.expires_at) + 20, "the short lease to run out", 10_000);
    const before = sha256File(t.db);
    release = holdLock(t.db);
    try {
      fails(orch(...quick, "status", "--run", "r"), "busy");
      fails(orch(...quick, "reconcile", "--run", "r"), "busy");
      expect(sha256File(t.db)).toBe(before);
    } finally {
      release();
    }
    expect(ok(orch("status", "--run", "r")).tasks.map((x: any) => [x.status, x.status_reason])).toEqual([["blocked", null], ["failed", "lease expired"]]);
  } finally {
    t.cleanup();
  }
});
