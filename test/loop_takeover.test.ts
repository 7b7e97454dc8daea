/** Taking work away from a worker: reassign, cancel and release, and the stale token afterwards. */
import { expect, test } from "vitest";
import { fails, ok, tempDb } from "./_helpers.ts";

function plan(t: ReturnType<typeof tempDb>, ...tasks: [string, string][]) {
  ok(t.cli.orch("run", "init", "--run", "r", "--goal", "takeover tests"));
  for (const [id, worker] of tasks) ok(t.cli.orch("task", "add", "--run", "r", "--task", id, "--title", `task ${id}`, "--default-to", worker));
}

const eventsAfter = (t: ReturnType<typeof tempDb>, after: number) =>
  ok(t.cli.orch("wait", "--run", "r", "--after-event", String(after), "--timeout-seconds", "0")).events as any[];

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

test("cancel: a task, then the whole run; active attempts get a cancel message and their later writes are refused", async () => {
  const t = tempDb();
  try {
    const { orch, inbox } = t.cli;
    plan(t, ["A", "w1"], ["B", "w2"], ["C", "w3"], ["D", "w4"]);
    const dA = ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
    const dB = ok(orch("dispatch", "--run", "r", "--task", "B", "--execution-mode", "analysis"));
    ok(orch("dispatch", "--run", "r", "--task", "D", "--execution-mode", "analysis"));
    const tA = ok(inbox("claim", "--as", "w1")).lease.token;
    const tB = ok(inbox("claim", "--as", "w2")).lease.token;
    const tD = ok(inbox("claim", "--as", "w4")).lease.token;
    ok(inbox("done", "--token", tD, "--body", "D is done"));

    const one = ok(orch("cancel", "--run", "r", "--task", "A", "--body", "A is no longer needed."));
    expect(one).toMatchObject({ cancelled_tasks: ["A"], cancelled_attempts: [dA.attempt.id], run_cancelled: false });
    const msgsA = ok(inbox("show", "--thread", String(dA.attempt.thread_id))).messages;
    expect(msgsA[msgsA.length - 1]).toMatchObject({ kind: "cancel", to: "w1", body: "A is no longer needed." });
    expect(fails(inbox("progress", "--token", tA, "--body", "still going"), "lease_lost").message).toMatch(/attempt 1 of task A was cancelled by the leader/);
    // B keeps running meanwhile
    ok(inbox("progress", "--token", tB, "--body", "fine"));
    fails(orch("cancel", "--run", "r", "--task", "A"), "invalid_state");

    const all = ok(orch("cancel", "--run", "r"));
    expect(all).toMatchObject({ cancelled_tasks: ["B", "C"], cancelled_attempts: [dB.attempt.id], already_finished: ["A", "D"], run_cancelled: true });
    const wB = ok(inbox("wait", "--as", "w2", "--after", "0", "--timeout-seconds", "5"));
    expect(wB.messages.map((m: any) => m.kind)).toEqual(["assignment", "cancel"]);
    expect(fails(inbox("done", "--token", tB, "--body", "late result"), "lease_lost").message).toMatch(/attempt 1 of task B was cancelled/);
    const st = ok(orch("status", "--run", "r"));
    expect(st.run.status).toBe("cancelled");
    expect(st.tasks.map((x: any) => [x.id, x.status])).toEqual([["A", "cancelled"], ["B", "cancelled"], ["C", "cancelled"], ["D", "done"]]);
    const events = eventsAfter(t, 0);
    expect(events.slice(-3).map((e: any) => [e.type, e.task_id])).toEqual([["task_cancelled", "B"], ["task_cancelled", "C"], ["run_cancelled", null]]);
    expect(events.filter((e: any) => e.type === "task_cancelled").map((e: any) => e.task_id)).toEqual(["A", "B", "C"]);
    fails(orch("dispatch", "--run", "r", "--task", "C", "--execution-mode", "analysis"), "invalid_state");
    fails(orch("cancel", "--run", "r"), "invalid_state");
  } finally {
    t.cleanup();
  }
});

test("release: the thread can be claimed again and the released token is refused", async () => {
  const t = tempDb();
  try {
    const { orch, inbox } = t.cli;
    plan(t, ["A", "w1"]);
    const d = ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
    const c1 = ok(inbox("claim", "--as", "w1"));
    ok(inbox("progress", "--token", c1.lease.token, "--body", "looked around"));
    const rel = ok(inbox("release", "--token", c1.lease.token));
    expect(rel.thread).toMatchObject({ id: d.attempt.thread_id, status: "open", lease: null });
    expect(rel.lease).toBeNull();
    const st = ok(orch("status", "--run", "r"));
    expect(st.tasks[0]).toMatchObject({ status: "dispatched", attempt: { number: 1, status: "dispatched", lease: null } });
    expect(fails(inbox("heartbeat", "--token", c1.lease.token), "lease_lost").message).toMatch(/lease on attempt 1 of task A was released/);

    const c2 = ok(inbox("claim", "--as", "w1", "--thread", String(d.attempt.thread_id)));
    expect(c2.lease.token).not.toBe(c1.lease.token);
    expect(c2.messages.map((m: any) => m.kind)).toEqual(["assignment", "progress"]);
    expect(fails(inbox("progress", "--token", c1.lease.token, "--body", "me again"), "lease_lost").message).toMatch(/released/);
    ok(inbox("done", "--token", c2.lease.token, "--body", "done after the handback"));
    const types = eventsAfter(t, 0).map((e: any) => e.type);
    expect(types.slice(types.indexOf("task_dispatched"))).toEqual([
      "task_dispatched", "task_claimed", "task_progress", "task_released", "task_claimed", "task_done", "run_finished",
    ]);

    // a free-standing thread too
    const s = ok(inbox("send", "--to", "w9", "--body", "look at this"));
    const f1 = ok(inbox("claim", "--as", "w9"));
    ok(inbox("release", "--token", f1.lease.token));
    const f2 = ok(inbox("claim", "--as", "w9", "--thread", String(s.thread.id)));
    fails(inbox("release", "--token", f1.lease.token), "lease_lost");
    ok(inbox("done", "--token", f2.lease.token, "--body", "looked"));
    expect(ok(inbox("show", "--thread", String(s.thread.id))).thread.status).toBe("closed");
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
    const asking = inboxAsync("ask", "--token", tok, "--body", "Which database?", "--wait", "--timeout-seconds", "60");
    const last = ok(orch("run", "show", "--run", "r")).last_event_id;
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
