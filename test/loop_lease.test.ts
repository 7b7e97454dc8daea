/** Short leases run out: reconcile fails the attempt, the stale worker is refused, retry starts fresh; wait wakes on its own. */
import { expect, test } from "vitest";
import { fails, ok, sha256File, sqlite3, tempDb, waitUntil } from "./_helpers.ts";

function setup(t: ReturnType<typeof tempDb>) {
  ok(t.cli.orch("run", "init", "--run", "r", "--goal", "lease tests"));
  ok(t.cli.orch("task", "add", "--run", "r", "--task", "A", "--title", "Slow analysis", "--default-to", "w1"));
  return ok(t.cli.orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
}

test("an expired lease: reconcile fails the attempt, the worker's writes are refused, retry makes attempt 2 on a fresh thread", async () => {
  const t = tempDb();
  try {
    const { orch, inbox } = t.cli;
    const d1 = setup(t);
    const c1 = ok(inbox("claim", "--as", "w1", "--lease-seconds", "1"));
    expect(c1.lease.seconds).toBe(1);
    const tok1 = c1.lease.token as string;
    await waitUntil(() => Date.now() > Date.parse(c1.lease.expires_at) + 20, "the 1 s lease to run out", 10_000);

    const rec = ok(orch("reconcile", "--run", "r"));
    expect(rec.changed).toBe(1);
    expect(rec.attempts).toEqual([{ attempt_id: d1.attempt.id, task_id: "A", from: "running", to: "failed" }]);
    // idempotent: the second reconcile finds nothing and does not touch the file
    const sum = sha256File(t.db);
    expect(ok(orch("reconcile", "--run", "r")).changed).toBe(0);
    expect(sha256File(t.db)).toBe(sum);

    const show = ok(orch("task", "show", "--run", "r", "--task", "A"));
    expect(show.task).toMatchObject({ status: "failed", status_reason: "lease expired" });
    expect(show.attempts[0]).toMatchObject({ number: 1, status: "failed", end_reason: "lease expired", lease: null });
    const log = ok(orch("wait", "--run", "r", "--after-event", "0", "--timeout-seconds", "0")).events;
    const tail = log.slice(-2);
    expect(tail.map((e: any) => e.type)).toEqual(["lease_expired", "task_failed"]);
    expect(tail[0]).toMatchObject({ task_id: "A", attempt_id: d1.attempt.id, data: { worker: "w1", expired_at: c1.lease.expires_at } });
    expect(tail[1].data).toEqual({ reason: "lease expired" });

    // the worker's next write is refused, saying the lease expired
    for (const args of [["progress", "--token", tok1, "--body", "still here"], ["heartbeat", "--token", tok1], ["done", "--token", tok1, "--body", "late"]]) {
      const r = inbox(...args);
      const err = fails(r, "lease_lost");
      expect(r.code).toBe(5);
      expect(err.message).toMatch(/lease on attempt 1 of task A expired at/);
    }
    expect(sha256File(t.db)).toBe(sum);

    // retry: attempt 2, fresh thread, the previous worker by default
    const r2 = ok(orch("retry", "--run", "r", "--task", "A", "--body", "Try again, report progress more often."));
    expect(r2.attempt).toMatchObject({ number: 2, assigned_to: "w1", status: "dispatched", execution_mode: "analysis" });
    expect(r2.attempt.thread_id).not.toBe(d1.attempt.thread_id);
    expect(r2.assignment.body).toBe("Try again, report progress more often.");
    // the old thread stays closed; the new worker claims the new one
    fails(inbox("claim", "--as", "w1", "--thread", String(d1.attempt.thread_id)), "invalid_state");
    const c2 = ok(inbox("claim", "--as", "w1"));
    expect(c2.thread.id).toBe(r2.attempt.thread_id);
    const tok2 = c2.lease.token as string;
    expect(tok2).not.toBe(tok1);
    // attempt 1's token can still not write, not even on the new attempt
    expect(fails(inbox("progress", "--token", tok1, "--body", "me again"), "lease_lost").message).toMatch(/attempt 1 of task A/);
    ok(inbox("progress", "--token", tok2, "--body", "on it"));
    ok(inbox("done", "--token", tok2, "--body", "finished on the second try"));
    const st = ok(orch("status", "--run", "r"));
    expect(st.tasks[0]).toMatchObject({ status: "done", attempts: 2, attempt: { number: 2, status: "done" } });
    expect(st.run.status).toBe("done");
    const types = ok(orch("wait", "--run", "r", "--after-event", String(tail[1].id), "--timeout-seconds", "0")).events.map((e: any) => e.type);
    expect(types).toEqual(["task_dispatched", "task_retried", "task_claimed", "task_progress", "task_done", "run_finished"]);
  } finally {
    t.cleanup();
  }
});

test("orch wait --for task_failed wakes on its own when the watched lease runs out, with no other process writing", async () => {
  const t = tempDb();
  try {
    const { inbox, orchAsync } = t.cli;
    setup(t);
    const c = ok(inbox("claim", "--as", "w1", "--lease-seconds", "3"));
    // read without orch (which would reconcile): nobody has folded the expiry yet
    const last = Number(sqlite3(t.db, "SELECT max(id) FROM events"));
    expect(sqlite3(t.db, "SELECT count(*) FROM events WHERE type = 'lease_expired'")).toBe("0");
    const w = ok(await orchAsync("wait", "--run", "r", "--for", "task_failed", "--after-event", String(last), "--timeout-seconds", "60"));
    expect(w.timed_out).toBe(false);
    expect(w.events).toHaveLength(1);
    expect(w.events[0]).toMatchObject({ type: "task_failed", task_id: "A", data: { reason: "lease expired" } });
    expect(Date.parse(w.events[0].created_at)).toBeGreaterThanOrEqual(Date.parse(c.lease.expires_at));
    // the wait wrote the lease_expired event itself, just before the task_failed it returned
    expect(sqlite3(t.db, "SELECT group_concat(type) FROM (SELECT type FROM events ORDER BY id DESC LIMIT 2)")).toBe("task_failed,lease_expired");
  } finally {
    t.cleanup();
  }
});

test("heartbeat and progress extend the lease; ask --wait keeps it alive while it waits", async () => {
  const t = tempDb();
  try {
    const { orch, inbox, inboxAsync } = t.cli;
    setup(t);
    const c = ok(inbox("claim", "--as", "w1", "--lease-seconds", "30"));
    const tok = c.lease.token as string;
    const hb = ok(inbox("heartbeat", "--token", tok, "--lease-seconds", "40"));
    expect(hb.lease.seconds).toBe(40);
    expect(Date.parse(hb.lease.expires_at)).toBeGreaterThan(Date.parse(c.lease.expires_at));
    const p = ok(inbox("progress", "--token", tok, "--body", "working"));
    expect(Date.parse(p.lease.expires_at)).toBeGreaterThanOrEqual(Date.parse(hb.lease.expires_at));
    // an 8 s lease, and a question that stays open well past it: without renewal the lease would run out
    ok(inbox("heartbeat", "--token", tok, "--lease-seconds", "8"));
    const asking = inboxAsync("ask", "--token", tok, "--body", "Which branch?", "--wait", "--timeout-seconds", "60");
    await waitUntil(() => sqlite3(t.db, "SELECT count(*) FROM messages WHERE kind = 'question'") === "1", "the question");
    const expiresAtAsk = Number(sqlite3(t.db, `SELECT expires_at FROM leases WHERE token = '${tok}'`));
    await waitUntil(() => Date.now() > expiresAtAsk + 1000, "the lease as of the question to be long past", 30_000);
    expect(asking.child.exitCode).toBeNull();
    expect(Number(sqlite3(t.db, `SELECT expires_at FROM leases WHERE token = '${tok}'`))).toBeGreaterThan(expiresAtAsk);
    expect(ok(orch("status", "--run", "r")).tasks[0].status).toBe("blocked");
    ok(orch("answer", "--run", "r", "--task", "A", "--body", "main"));
    const asked = ok(await asking);
    expect(asked.answer.body).toBe("main");
    expect(Date.parse(asked.lease.expires_at)).toBeGreaterThan(expiresAtAsk); // the renewed lease is reported
    ok(inbox("done", "--token", tok, "--body", "done on main"));
    expect(ok(orch("status", "--run", "r")).tasks[0].status).toBe("done");
  } finally {
    t.cleanup();
  }
});

test("inbox wait --token hears the answer later and keeps the lease alive meanwhile; a lost token is refused", async () => {
  const t = tempDb();
  try {
    const { orch, inbox, inboxAsync } = t.cli;
    setup(t);
    const c = ok(inbox("claim", "--as", "w1", "--lease-seconds", "8"));
    const tok = c.lease.token as string;
    const q = ok(inbox("ask", "--token", tok, "--body", "Which region?"));
    expect(q.answer).toBeUndefined();
    fails(inbox("wait", "--token", tok, "--as", "w9", "--timeout-seconds", "0"), "usage");
    fails(inbox("wait", "--token", tok, "--thread", "999", "--timeout-seconds", "0"), "usage");
    const listening = inboxAsync("wait", "--token", tok, "--after", String(q.message.id), "--timeout-seconds", "60");
    const expiresAtAsk = Date.parse(q.lease.expires_at);
    await waitUntil(() => Date.now() > expiresAtAsk + 1000, "the lease as of the question to be long past", 30_000);
    expect(listening.child.exitCode).toBeNull();
    expect(ok(orch("status", "--run", "r")).tasks[0].status).toBe("blocked"); // not failed: the lease was renewed
    ok(orch("answer", "--run", "r", "--task", "A", "--body", "eu-west"));
    const heard = ok(await listening);
    expect(heard.messages.map((m: any) => [m.kind, m.body])).toEqual([["answer", "eu-west"]]);
    expect(heard.cursor).toBe(heard.messages[0].id);
    expect(Date.parse(heard.lease.expires_at)).toBeGreaterThan(expiresAtAsk);
    ok(inbox("done", "--token", tok, "--body", "eu-west it is"));
    expect(fails(inbox("wait", "--token", tok, "--timeout-seconds", "0"), "lease_lost").message).toMatch(/already finished \(done\)/);
  } finally {
    t.cleanup();
  }
});
