/** A worker gives up (fail) and the leader retries elsewhere; a worker asks twice before the answer. */
import { expect, test } from "vitest";
import { fails, ok, tempDb } from "./_helpers.ts";
import { eventsAfter, plan } from "./loop_scenario.ts";

test("fail: the task is failed with the worker's reason; retry --to another worker starts attempt 2", () => {
  const t = tempDb();
  try {
    const { orch, inbox } = t.cli;
    plan(t, ["A", "w1"], ["B", "w2"]);
    ok(orch("dep", "add", "--run", "r", "--task", "B", "--depends-on", "A"));
    const d1 = ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
    const tok = ok(inbox("claim", "--as", "w1")).lease.token;
    const f = ok(inbox("fail", "--token", tok, "--body", "The CI logs were purged.", "--payload-json", '{"retryable":true}'));
    expect(f.thread.status).toBe("closed");
    expect(f.message).toMatchObject({ kind: "failure", payload: { retryable: true } });
    const st = ok(orch("status", "--run", "r"));
    expect(st.tasks[0]).toMatchObject({ status: "failed", status_reason: "worker reported failure: The CI logs were purged." });
    expect(st.tasks[1]).toMatchObject({ status: "pending", ready: false, waiting_on: [{ task_id: "A", status: "failed" }] });
    expect(st.next.map((n: any) => [n.action, n.task_id])).toContainEqual(["retry", "A"]);
    expect(fails(inbox("progress", "--token", tok, "--body", "wait"), "lease_lost").message).toMatch(/already finished \(failed\)/);
    // a failed task is retried, not dispatched again
    fails(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"), "invalid_state");
    const r = ok(orch("retry", "--run", "r", "--task", "A", "--to", "w3"));
    expect(r.attempt).toMatchObject({ number: 2, assigned_to: "w3" });
    expect(r.attempt.thread_id).not.toBe(d1.attempt.thread_id);
    fails(orch("retry", "--run", "r", "--task", "A"), "invalid_state"); // it has an active attempt now
    ok(inbox("done", "--token", ok(inbox("claim", "--as", "w3")).lease.token, "--body", "found a mirror of the logs"));
    expect(ok(orch("ready", "--run", "r")).tasks.map((x: any) => x.id)).toEqual(["B"]);
    const types = eventsAfter(t, 0).map((e: any) => e.type);
    expect(types.slice(types.indexOf("task_dispatched"))).toEqual([
      "task_dispatched", "task_claimed", "task_failed", "task_dispatched", "task_retried", "task_claimed", "task_done",
    ]);
  } finally {
    t.cleanup();
  }
});

test("a second question while blocked is announced too, and answer replies to the latest", () => {
  const t = tempDb();
  try {
    const { orch, inbox } = t.cli;
    plan(t, ["A", "w1"]);
    ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
    const tok = ok(inbox("claim", "--as", "w1")).lease.token;
    ok(inbox("ask", "--token", tok, "--body", "First question?"));
    const q2 = ok(inbox("ask", "--token", tok, "--body", "And a second one?"));
    const blocked = ok(orch("blocked", "--run", "r")).blocked;
    expect(blocked).toHaveLength(1);
    expect(blocked[0].question).toMatchObject({ id: q2.message.id, body: "And a second one?" });
    const a = ok(orch("answer", "--run", "r", "--task", "A", "--body", "Both: yes."));
    expect(a.question.id).toBe(q2.message.id);
    fails(orch("answer", "--run", "r", "--task", "A", "--body", "again"), "invalid_state");
    const types = eventsAfter(t, 0).map((e: any) => [e.type, e.data.question]);
    expect(types.filter(([type]: string[]) => type === "task_blocked")).toEqual([["task_blocked", "First question?"], ["task_blocked", "And a second one?"]]);
    expect(types[types.length - 1]![0]).toBe("task_answered");
  } finally {
    t.cleanup();
  }
});
