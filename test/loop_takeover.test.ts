/** Taking work away from a worker: reassign, and the stale token afterwards. */
import { expect, test } from "vitest";
import { fails, ok, tempDb } from "./_helpers.ts";
import { eventsAfter, plan } from "./loop_scenario.ts";

test("reassign: the old worker hears the cancel and is refused (lease_lost naming the reassignment); the new worker completes", async () => {
  const t = tempDb();
  try {
    const { orch, inbox, inboxAsync } = t.cli;
    plan(t, ["A", "w1"]);
    const d1 = ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
    const c1 = ok(inbox("claim", "--as", "w1"));
    const tok1 = c1.lease.token as string;
    const p1 = ok(inbox("progress", "--token", tok1, "--body", "halfway"));
    // the old worker is waiting for news on its thread when the leader reassigns
    const listening = inboxAsync("wait", "--as", "w1", "--thread", String(d1.attempt.thread_id), "--after", String(p1.message.id), "--timeout-seconds", "60");
    const last = ok(orch("run", "show", "--run", "r")).last_event_id;
    const r = ok(orch("reassign", "--run", "r", "--task", "A", "--to", "w2", "--body", "w2 takes over: start from the logs."));
    expect(r.cancelled_attempt).toMatchObject({ number: 1, assigned_to: "w1", status: "cancelled", end_reason: "reassigned", lease: null });
    expect(r.attempt).toMatchObject({ number: 2, assigned_to: "w2", status: "dispatched" });
    expect(r.attempt.thread_id).not.toBe(d1.attempt.thread_id);
    expect(r.task.status).toBe("dispatched");

    const heard = ok(await listening);
    expect(heard.timed_out).toBe(false);
    expect(heard.messages).toHaveLength(1);
    expect(heard.messages[0]).toMatchObject({ kind: "cancel", from: "leader", to: "w1", payload: { reason: "reassigned" } });
    expect(heard.messages[0].body).toMatch(/reassigned to w2/);
    const shown = ok(inbox("show", "--thread", String(d1.attempt.thread_id)));
    expect(shown.thread).toMatchObject({ status: "closed", lease: null });
    expect(shown.messages.map((m: any) => m.kind)).toEqual(["assignment", "progress", "cancel"]);

    for (const args of [["progress", "--token", tok1, "--body", "almost"], ["done", "--token", tok1, "--body", "my result"], ["heartbeat", "--token", tok1], ["release", "--token", tok1]]) {
      const e = fails(inbox(...args), "lease_lost");
      expect(e.message).toMatch(/attempt 1 of task A was reassigned to w2 \(attempt 2\)/);
      expect(e.details).toMatchObject({ thread_id: d1.attempt.thread_id, end_reason: "reassigned" });
    }
    // the old worker cannot take the new thread either
    fails(inbox("claim", "--as", "w1", "--thread", String(r.attempt.thread_id)), "invalid_state");
    fails(inbox("claim", "--as", "w1"), "not_found");

    const c2 = ok(inbox("claim", "--as", "w2"));
    expect(c2.thread.id).toBe(r.attempt.thread_id);
    expect(c2.messages[0].body).toBe("w2 takes over: start from the logs.");
    ok(inbox("done", "--token", c2.lease.token, "--body", "done by w2"));
    const show = ok(orch("task", "show", "--run", "r", "--task", "A"));
    expect(show.task.status).toBe("done");
    expect(show.attempts.map((a: any) => [a.number, a.assigned_to, a.status])).toEqual([[1, "w1", "cancelled"], [2, "w2", "done"]]);
    expect(eventsAfter(t, last).map((e: any) => e.type)).toEqual([
      "task_cancelled", "task_dispatched", "task_reassigned", "task_claimed", "task_done", "run_finished",
    ]);
    // the late result of w1 never landed
    expect(ok(inbox("show", "--thread", String(d1.attempt.thread_id))).messages).toHaveLength(3);
  } finally {
    t.cleanup();
  }
});

test("a worker blocked in ask --wait is woken by reassign with the cancel message", async () => {
  const t = tempDb();
  try {
    const { orch, inbox, inboxAsync } = t.cli;
    plan(t, ["A", "w1"]);
    ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
    const tok = ok(inbox("claim", "--as", "w1")).lease.token as string;
    const last = ok(orch("run", "show", "--run", "r")).last_event_id; // before the question, so the wait sees it
    const asking = inboxAsync("ask", "--token", tok, "--body", "Which database?", "--wait", "--timeout-seconds", "60");
    ok(await t.cli.orchAsync("wait", "--run", "r", "--for", "task_blocked", "--after-event", String(last), "--timeout-seconds", "60"));
    expect(asking.child.exitCode).toBeNull();
    ok(orch("reassign", "--run", "r", "--task", "A", "--to", "w2"));
    const asked = ok(await asking);
    expect(asked.timed_out).toBe(false);
    expect(asked.answer).toMatchObject({ kind: "cancel", to: "w1", payload: { reason: "reassigned" } });
    expect(fails(inbox("progress", "--token", tok, "--body", "so?"), "lease_lost").message).toMatch(/reassigned to w2/);
    // the question moved nowhere: the new attempt starts unblocked
    expect(ok(orch("status", "--run", "r")).tasks[0]).toMatchObject({ status: "dispatched", attempt: { number: 2, assigned_to: "w2" } });
  } finally {
    t.cleanup();
  }
});
