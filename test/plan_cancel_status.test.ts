/**
 * `cancel` (one task, whole run) and `status` through the real CLI: what is
 * cancelled, the events written with it, dependents reported as waiting on a
 * cancelled task, and a status an agent can choose its next step from.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { fails, ok, run, sha256File, sqlite3, tempDb } from "./_helpers.ts";

let t: ReturnType<typeof tempDb>;
const orch = (...a: string[]) => t.cli.orch(...a);

beforeAll(() => {
  t = tempDb();
});
afterAll(() => t.cleanup());

function eventTypes(run: string, after = 0): string[] {
  const out = sqlite3(t.db, `SELECT type || ' ' || coalesce(task_id, '-') FROM events WHERE run_id = '${run}' AND id > ${after} ORDER BY id`);
  return out === "" ? [] : out.split("\n");
}
const maxEvent = () => Number(sqlite3(t.db, "SELECT coalesce(max(id), 0) FROM events"));

function refused(code: string, ...args: string[]): any {
  const before = sha256File(t.db);
  const err = fails(orch(...args), code);
  expect(sha256File(t.db)).toBe(before);
  return err;
}

/** A run: A; B -> A; C -> B; D -> A; E (no deps). */
function plan(runId: string): void {
  ok(orch("run", "init", "--run", runId, "--goal", `goal of ${runId}`));
  for (const id of ["A", "B", "C", "D", "E"]) ok(orch("task", "add", "--run", runId, "--task", id, "--title", `task ${id}`, "--default-to", "w1"));
  ok(orch("dep", "add", "--run", runId, "--task", "B", "--depends-on", "A"));
  ok(orch("dep", "add", "--run", runId, "--task", "C", "--depends-on", "B"));
  ok(orch("dep", "add", "--run", runId, "--task", "D", "--depends-on", "A"));
}

describe("status", () => {
  test("has what an agent needs to decide its next step", () => {
    plan("s1");
    const v = ok(orch("status", "--run", "s1"));
    expect(Object.keys(v).sort()).toEqual(["counts", "last_event_id", "next", "ok", "run", "tasks"]);
    expect(v.run).toMatchObject({ id: "s1", goal: "goal of s1", status: "active" });
    expect(v.counts).toEqual({ total: 5, pending: 5, ready: 2, waiting: 3, dispatched: 0, running: 0, blocked: 0, done: 0, failed: 0, cancelled: 0 });
    expect(v.last_event_id).toBe(maxEvent());
    const byId = Object.fromEntries(v.tasks.map((x: any) => [x.id, x]));
    expect(v.tasks.map((x: any) => x.id)).toEqual(["A", "B", "C", "D", "E"]);
    for (const key of ["id", "title", "summary", "status", "status_reason", "default_to", "acceptance", "ready", "depends_on", "waiting_on", "attempts", "attempt", "latest_message"]) {
      expect(byId.A).toHaveProperty(key);
    }
    expect(byId.A).toMatchObject({ status: "pending", ready: true, depends_on: [], waiting_on: [], attempts: 0, attempt: null, latest_message: null });
    expect(byId.C).toMatchObject({ ready: false, depends_on: ["B"], waiting_on: [{ task_id: "B", status: "pending" }] });
    expect(v.next).toEqual([
      { action: "dispatch", task_id: "A", reason: "ready: it has no dependencies", command: "orch dispatch --run s1 --task A --execution-mode analysis|code" },
      { action: "dispatch", task_id: "E", reason: "ready: it has no dependencies", command: "orch dispatch --run s1 --task E --execution-mode analysis|code" },
    ]);

    // after a dispatch: the attempt, its thread and a wait suggestion with the cursor
    const d = ok(orch("dispatch", "--run", "s1", "--task", "A", "--execution-mode", "analysis"));
    const v2 = ok(orch("status", "--run", "s1"));
    const a = v2.tasks.find((x: any) => x.id === "A");
    expect(a).toMatchObject({ status: "dispatched", ready: false, attempts: 1, attempt: { id: d.attempt.id, number: 1, assigned_to: "w1", thread_id: d.attempt.thread_id, status: "dispatched", lease: null } });
    expect(a.latest_message).toMatchObject({ kind: "assignment", from: "leader" });
    expect(v2.next.map((n: any) => [n.action, n.task_id])).toEqual([["dispatch", "E"], ["wait", undefined]]);
    expect(v2.next[1].command).toBe(`orch wait --run s1 --for task_blocked,task_done,task_failed --after-event ${v2.last_event_id} --timeout-seconds 900`);

    // a claim and a question: running, then blocked with answer first in next
    const claim = ok(t.cli.inbox("claim", "--as", "w1", "--thread", String(d.attempt.thread_id)));
    const v3 = ok(orch("status", "--run", "s1"));
    expect(v3.tasks[0]).toMatchObject({ status: "running", attempt: { status: "running", lease: { worker: "w1" } } });
    expect(v3.tasks[0].attempt.lease.expires_at).toMatch(/^\d{4}-/);
    ok(t.cli.inbox("ask", "--token", claim.lease.token, "--body", "Which database?"));
    const v4 = ok(orch("status", "--run", "s1"));
    expect(v4.tasks[0]).toMatchObject({ status: "blocked", latest_message: { kind: "question", from: "w1", body: "Which database?" } });
    expect(v4.next[0]).toEqual({ action: "answer", task_id: "A", reason: "question: Which database?", command: "orch answer --run s1 --task A --body ANSWER" });
    expect(v4.counts).toMatchObject({ blocked: 1, ready: 1, waiting: 3 });
  });

  test("an empty run suggests adding tasks; a finished one says done", () => {
    ok(orch("run", "init", "--run", "s2", "--goal", "empty"));
    expect(ok(orch("status", "--run", "s2")).next).toEqual([{ action: "add_tasks", reason: "the run has no tasks yet", command: "orch task add --run s2 --task ID --title TITLE" }]);

    const finish = (runId: string, task: string) => {
      const d = ok(orch("dispatch", "--run", runId, "--task", task, "--execution-mode", "analysis", "--to", "w9"));
      const c = ok(t.cli.inbox("claim", "--as", "w9", "--thread", String(d.attempt.thread_id)));
      ok(t.cli.inbox("done", "--token", c.lease.token, "--body", "done"));
    };
    ok(orch("task", "add", "--run", "s2", "--task", "X", "--title", "x"));
    ok(orch("task", "add", "--run", "s2", "--task", "Y", "--title", "y"));
    ok(orch("cancel", "--run", "s2", "--task", "Y"));
    finish("s2", "X");
    const v = ok(orch("status", "--run", "s2"));
    expect(v.run.status).toBe("active");
    expect(v.next).toEqual([{ action: "done", reason: "no open work: 1 done, 1 cancelled" }]);

    ok(orch("run", "init", "--run", "s3", "--goal", "one task"));
    ok(orch("task", "add", "--run", "s3", "--task", "X", "--title", "x"));
    finish("s3", "X");
    const v3 = ok(orch("status", "--run", "s3"));
    expect(v3.run.status).toBe("done");
    expect(v3.next).toEqual([{ action: "done", reason: "every task is done" }]);
    expect(eventTypes("s3").slice(-2)).toEqual(["task_done X", "run_finished -"]);
    // new work reopens a finished run, and the event says so
    ok(orch("task", "add", "--run", "s3", "--task", "Z", "--title", "z"));
    expect(ok(orch("run", "show", "--run", "s3")).run.status).toBe("active");
    expect(sqlite3(t.db, "SELECT data_json FROM events WHERE run_id = 's3' ORDER BY id DESC LIMIT 1")).toBe('{"title":"z","run_reopened":true}');
  });

  test("text output is an aligned table of tasks, then the next steps; errors have no stack trace", () => {
    const r = run(["--db", t.db, "status", "--run", "s1"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe("run s1 active: goal of s1");
    const h = lines.findIndex((l) => l.startsWith("TASK"));
    expect(lines[h]).toMatch(/^TASK\s+STATUS\s+ATTEMPT\s+LEASE\s+DETAIL$/);
    const cols = ["STATUS", "ATTEMPT", "LEASE", "DETAIL"].map((c) => lines[h]!.indexOf(c));
    const rows = lines.slice(h + 1, h + 6);
    expect(rows.map((l) => l.split(/\s+/)[0])).toEqual(["A", "B", "C", "D", "E"]);
    for (const row of rows) {
      for (const c of cols) {
        expect(row[c - 1]).toBe(" "); // every column starts at the header's position
        expect(row[c]).not.toBe(" ");
      }
    }
    expect(rows[0]).toMatch(/^A\s+blocked\s+#1 w1 \(analysis, thread \d+\)\s+in \d+m \d+s\s+question: Which database\?$/);
    expect(rows[2]).toMatch(/^C\s+pending\s+-\s+-\s+waits on B \(pending\)$/);
    expect(r.stdout).toContain("next:\n  answer A: question: Which database?\n    orch answer --run s1 --task A --body ANSWER");

    const e = run(["--db", t.db, "status", "--run", "nope"]);
    expect(e.code).toBe(3);
    expect(e.stdout).toBe("");
    expect(e.stderr).toBe("error [not_found]: run nope does not exist\nhint: list runs with `orch run list`, or create it with `orch run init`\n");
  });

  test("bad input: unknown run, bad id, missing flag", () => {
    refused("not_found", "status", "--run", "nope");
    refused("usage", "status", "--run", "no/pe");
    refused("usage", "status");
  });
});

describe("cancel", () => {
  test("cancel --task: the task is cancelled with its event; its dependents are reported as waiting on it", () => {
    plan("c1");
    const last = maxEvent();
    const r = ok(orch("cancel", "--run", "c1", "--task", "A"));
    expect(r).toEqual({
      ok: true,
      run_id: "c1",
      cancelled_tasks: ["A"],
      cancelled_attempts: [],
      already_finished: [],
      run_cancelled: false,
      waiting_dependents: [{ task_id: "B", waiting_on: ["A"] }, { task_id: "D", waiting_on: ["A"] }],
    });
    expect(eventTypes("c1", last)).toEqual(["task_cancelled A"]);

    const v = ok(orch("status", "--run", "c1"));
    const byId = Object.fromEntries(v.tasks.map((x: any) => [x.id, x]));
    expect(byId.A).toMatchObject({ status: "cancelled", status_reason: "cancelled by the leader", ready: false });
    expect(byId.B).toMatchObject({ status: "pending", ready: false, waiting_on: [{ task_id: "A", status: "cancelled" }] });
    expect(byId.D.waiting_on).toEqual([{ task_id: "A", status: "cancelled" }]);
    expect(byId.C.waiting_on).toEqual([{ task_id: "B", status: "pending" }]);
    const fix = v.next.filter((n: any) => n.action === "fix_dependency");
    expect(fix.map((n: any) => n.task_id)).toEqual(["B", "D"]);
    expect(fix[0].reason).toContain("waits on A (cancelled)");
    expect(fix[0].command).toBe("orch retry --run c1 --task A");
    expect(v.next.map((n: any) => n.action)).toEqual(["dispatch", "fix_dependency", "fix_dependency"]);
    expect(v.counts).toMatchObject({ cancelled: 1, ready: 1, waiting: 3 });
    expect(ok(orch("ready", "--run", "c1")).tasks.map((x: any) => x.id)).toEqual(["E"]);

    const text = run(["--db", t.db, "cancel", "--run", "c1", "--task", "E"]);
    expect(text.stdout.trim()).toBe("cancelled tasks: E");
  });

  test("cancel --task of a claimed task ends its attempt and tells its worker", () => {
    ok(orch("task", "add", "--run", "c1", "--task", "F", "--title", "task F"));
    const d = ok(orch("dispatch", "--run", "c1", "--task", "F", "--execution-mode", "analysis", "--to", "w2"));
    const claim = ok(t.cli.inbox("claim", "--as", "w2", "--thread", String(d.attempt.thread_id)));
    const last = maxEvent();
    const r = ok(orch("cancel", "--run", "c1", "--task", "F", "--body", "Not needed any more."));
    expect(r).toMatchObject({ cancelled_tasks: ["F"], cancelled_attempts: [d.attempt.id], run_cancelled: false, waiting_dependents: [] });
    expect(eventTypes("c1", last)).toEqual(["task_cancelled F"]);
    const thread = ok(t.cli.inbox("show", "--thread", String(d.attempt.thread_id)));
    expect(thread.messages.at(-1)).toMatchObject({ kind: "cancel", body: "Not needed any more." });
    fails(t.cli.inbox("progress", "--token", claim.lease.token, "--body", "working"), "lease_lost");
    const f = ok(orch("task", "show", "--run", "c1", "--task", "F"));
    expect(f.task.status).toBe("cancelled");
    expect(f.attempts.map((a: any) => a.status)).toEqual(["cancelled"]);
  });

  test("refusals write nothing", () => {
    refused("invalid_state", "cancel", "--run", "c1", "--task", "A"); // already cancelled
    refused("not_found", "cancel", "--run", "c1", "--task", "Z");
    refused("not_found", "cancel", "--run", "nope");
    refused("usage", "cancel", "--run", "c1", "--task", "a b");
    refused("usage", "cancel", "--run", "c1", "--task", "C", "--body", " ");
    refused("usage", "cancel");
  });

  test("whole-run cancel: every unfinished task and the run, with their events; dependents show what they waited on", () => {
    plan("c2");
    const d = ok(orch("dispatch", "--run", "c2", "--task", "A", "--execution-mode", "analysis"));
    ok(orch("dispatch", "--run", "c2", "--task", "E", "--execution-mode", "analysis"));
    const claimE = ok(t.cli.inbox("claim", "--as", "w1", "--thread", String(ok(orch("task", "show", "--run", "c2", "--task", "E")).attempts[0].thread_id)));
    ok(t.cli.inbox("done", "--token", claimE.lease.token, "--body", "E finished"));
    const claimA = ok(t.cli.inbox("claim", "--as", "w1", "--thread", String(d.attempt.thread_id)));
    const last = maxEvent();

    const r = ok(orch("cancel", "--run", "c2", "--body", "Stop: priorities changed."));
    expect(r).toMatchObject({ run_id: "c2", cancelled_tasks: ["A", "B", "C", "D"], cancelled_attempts: [d.attempt.id], already_finished: ["E"], run_cancelled: true });
    expect(eventTypes("c2", last)).toEqual(["task_cancelled A", "task_cancelled B", "task_cancelled C", "task_cancelled D", "run_cancelled -"]);

    // the worker of the cancelled attempt got the message and is refused from now on
    const thread = ok(t.cli.inbox("show", "--thread", String(d.attempt.thread_id)));
    expect(thread.messages.at(-1)).toMatchObject({ kind: "cancel", body: "Stop: priorities changed." });
    fails(t.cli.inbox("progress", "--token", claimA.lease.token, "--body", "still going"), "lease_lost");

    const v = ok(orch("status", "--run", "c2"));
    expect(v.run.status).toBe("cancelled");
    const byId = Object.fromEntries(v.tasks.map((x: any) => [x.id, x]));
    expect(byId.A.attempt).toMatchObject({ status: "cancelled" });
    expect(byId.B.waiting_on).toEqual([{ task_id: "A", status: "cancelled" }]);
    expect(byId.C.waiting_on).toEqual([{ task_id: "B", status: "cancelled" }]);
    expect(byId.E.status).toBe("done");
    expect(v.next).toEqual([{ action: "done", reason: "the run is cancelled" }]);
    expect(ok(orch("ready", "--run", "c2")).tasks).toEqual([]);

    // a cancelled run takes no new work, and cannot be cancelled twice
    refused("invalid_state", "cancel", "--run", "c2");
    refused("invalid_state", "task", "add", "--run", "c2", "--task", "F", "--title", "more");
    refused("invalid_state", "dep", "add", "--run", "c2", "--task", "D", "--depends-on", "E");
    // a repeat of an existing task's add is still answered (existed), without writing
    const before = sha256File(t.db);
    expect(ok(orch("task", "add", "--run", "c2", "--task", "A", "--title", "task A")).existed).toBe(true);
    expect(ok(orch("dep", "add", "--run", "c2", "--task", "B", "--depends-on", "A")).dependencies).toEqual([{ task_id: "B", depends_on: "A", existed: true }]);
    expect(sha256File(t.db)).toBe(before);
  });
});
