/** Ending work: cancel (a task, a run) and release, and the stale token afterwards. */
import { expect, test } from "vitest";
import { fails, ok, tempDb } from "./_helpers.ts";
import { eventsAfter, plan } from "./loop_scenario.ts";

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
