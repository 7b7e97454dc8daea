/**
 * Shared by the loop tests: small setup helpers, and the full leader–worker
 * loop as real processes for the per-runtime tests: 3 tasks (C depends on A
 * and B), 3 workers, one blocked question answered through wait/blocked/answer,
 * dependent work dispatched after.
 */
import { expect } from "vitest";
import { fails, ok, type RuntimeKind, tempDb } from "./_helpers.ts";

/** A run "r" with tasks [id, default worker]. */
export function plan(t: ReturnType<typeof tempDb>, ...tasks: [string, string][]) {
  ok(t.cli.orch("run", "init", "--run", "r", "--goal", "loop tests"));
  for (const [id, worker] of tasks) ok(t.cli.orch("task", "add", "--run", "r", "--task", id, "--title", `task ${id}`, "--default-to", worker));
}

export const eventsAfter = (t: ReturnType<typeof tempDb>, after: number) =>
  ok(t.cli.orch("wait", "--run", "r", "--after-event", String(after), "--timeout-seconds", "0")).events as any[];

/** The event log the scenario must produce, in order. */
export const FULL_RUN_EVENTS = [
  "run_created",
  "task_added", // A
  "task_added", // B
  "task_added", // C
  "dep_added", // C -> A
  "dep_added", // C -> B
  "task_dispatched", // A
  "task_dispatched", // B
  "task_claimed", // A and B, in either order
  "task_claimed",
  "task_progress",
  "task_progress",
  "task_blocked", // B asks and waits
  "task_answered",
  "task_progress", // B continues
  "task_done", // B
  "task_done", // A
  "task_dispatched", // C, now ready
  "task_claimed",
  "task_progress",
  "task_done", // C
  "run_finished",
] as const;

export async function fullRun(runtime: RuntimeKind): Promise<void> {
  const t = tempDb(runtime);
  const { orch, inbox, orchAsync, inboxAsync } = t.cli;
  try {
    const R = "r1";
    ok(orch("run", "init", "--run", R, "--goal", "Write the flaky-test report"));
    ok(orch("task", "add", "--run", R, "--task", "A", "--title", "Collect CI logs", "--default-to", "wa"));
    ok(orch("task", "add", "--run", R, "--task", "B", "--title", "Classify failures", "--default-to", "wb"));
    ok(orch("task", "add", "--run", R, "--task", "C", "--title", "Write the report", "--default-to", "wc"));
    ok(orch("dep", "add", "--run", R, "--task", "C", "--depends-on", "A,B"));

    // the leader dispatches what is ready: A and B, not C
    expect(ok(orch("ready", "--run", R)).tasks.map((x: any) => x.id)).toEqual(["A", "B"]);
    const dA = ok(orch("dispatch", "--run", R, "--task", "A", "--execution-mode", "analysis"));
    const dB = ok(orch("dispatch", "--run", R, "--task", "B", "--execution-mode", "analysis", "--body", "Classify each failure as flaky or real."));
    expect(dA.attempt).toMatchObject({ number: 1, assigned_to: "wa", execution_mode: "analysis", status: "dispatched" });
    expect(dB.attempt).toMatchObject({ number: 1, assigned_to: "wb", execution_mode: "analysis" });
    expect(dA.attempt.thread_id).not.toBe(dB.attempt.thread_id);

    // two workers claim at the same time (the next thread addressed to each) and report progress
    const [cA, cB] = (await Promise.all([inboxAsync("claim", "--as", "wa"), inboxAsync("claim", "--as", "wb")])).map(ok);
    expect(cA.thread.id).toBe(dA.attempt.thread_id);
    expect(cB.thread.id).toBe(dB.attempt.thread_id);
    expect(cB.messages[0]).toMatchObject({ kind: "assignment", body: "Classify each failure as flaky or real." });
    const tokA = cA.lease.token as string;
    const tokB = cB.lease.token as string;
    await Promise.all([
      inboxAsync("progress", "--token", tokA, "--body", "downloaded 40 logs").then(ok),
      inboxAsync("progress", "--token", tokB, "--body", "12 failures so far").then(ok),
    ]);
    const before = ok(orch("status", "--run", R));
    expect(before.tasks.map((x: any) => x.status)).toEqual(["running", "running", "pending"]);

    // B asks and waits in the same command; the leader sees it through wait and blocked, and answers
    const asking = inboxAsync("ask", "--token", tokB, "--body", "Count quarantined tests?", "--wait", "--timeout-seconds", "60");
    const woke = ok(await orchAsync("wait", "--run", R, "--for", "task_blocked", "--after-event", String(before.last_event_id), "--timeout-seconds", "60"));
    expect(woke.timed_out).toBe(false);
    expect(woke.events.map((e: any) => [e.type, e.task_id])).toEqual([["task_blocked", "B"]]);
    const blocked = ok(orch("blocked", "--run", R));
    expect(blocked.blocked).toHaveLength(1);
    expect(blocked.blocked[0].task.id).toBe("B");
    expect(blocked.blocked[0].question.body).toBe("Count quarantined tests?");
    expect(blocked.blocked[0].attempt.assigned_to).toBe("wb");
    expect(asking.child.exitCode).toBeNull(); // still waiting: nothing has answered it yet
    const answered = ok(orch("answer", "--run", R, "--task", "B", "--body", "No, skip them.", "--payload-json", '{"quarantined":false}'));
    expect(answered.task.status).toBe("running");
    const asked = ok(await asking);
    expect(asked.timed_out).toBe(false);
    expect(asked.answer).toMatchObject({ kind: "answer", body: "No, skip them.", payload: { quarantined: false }, from: "leader", to: "wb" });

    // the worker continues and finishes; A finishes too
    ok(inbox("progress", "--token", tokB, "--body", "classified, skipping quarantined"));
    ok(inbox("done", "--token", tokB, "--body", "9 flaky, 3 real", "--result-json", '{"flaky":9,"real":3}'));
    ok(inbox("done", "--token", tokA, "--body", "logs in /tmp/logs"));
    const done = ok(orch("wait", "--run", R, "--for", "task_done", "--after-event", String(woke.last_event_id), "--timeout-seconds", "30"));
    expect(done.events.map((e: any) => e.task_id)).toEqual(["B", "A"]);

    // dependent work is now ready and dispatched
    expect(ok(orch("ready", "--run", R)).tasks.map((x: any) => x.id)).toEqual(["C"]);
    const dC = ok(orch("dispatch", "--run", R, "--task", "C", "--execution-mode", "analysis"));
    const cC = ok(inbox("claim", "--as", "wc", "--thread", String(dC.attempt.thread_id)));
    expect(cC.messages[0].payload).toMatchObject({ run_id: R, task_id: "C", attempt_number: 1, execution_mode: "analysis" });
    ok(inbox("progress", "--token", cC.lease.token, "--body", "drafting"));
    ok(inbox("done", "--token", cC.lease.token, "--body", "report written"));

    // final status: everything done, the run done, and the complete event log in order
    const status = ok(orch("status", "--run", R));
    expect(status.run.status).toBe("done");
    expect(status.tasks.map((x: any) => [x.id, x.status, x.attempt.status, x.attempt.assigned_to])).toEqual([
      ["A", "done", "done", "wa"],
      ["B", "done", "done", "wb"],
      ["C", "done", "done", "wc"],
    ]);
    expect(status.tasks[1].latest_message).toMatchObject({ kind: "result", body: "9 flaky, 3 real" });
    expect(status.next).toEqual([{ action: "done", reason: "every task is done" }]);
    const log = ok(orch("wait", "--run", R, "--after-event", "0", "--timeout-seconds", "0"));
    expect(log.events.map((e: any) => e.type)).toEqual([...FULL_RUN_EVENTS]);
    const ids = log.events.map((e: any) => e.id);
    expect(ids).toEqual([...ids].sort((a: number, b: number) => a - b));
    expect(log.last_event_id).toBe(ids[ids.length - 1]);
    const blockedEvent = log.events.find((e: any) => e.type === "task_blocked");
    expect(blockedEvent).toMatchObject({ task_id: "B", actor: "wb", data: { question: "Count quarantined tests?" } });
    expect(log.events.filter((e: any) => e.type === "task_dispatched").map((e: any) => e.task_id)).toEqual(["A", "B", "C"]);
    // a reconcile now has nothing left to do, and a finished run cannot be cancelled
    expect(ok(orch("reconcile", "--run", R)).changed).toBe(0);
    expect(fails(orch("cancel", "--run", R), "invalid_state").message).toMatch(/already done/);
  } finally {
    t.cleanup();
  }
}
