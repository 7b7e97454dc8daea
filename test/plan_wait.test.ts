/**
 * `orch wait` through real processes: it returns what is already in the log
 * after the cursor, blocks otherwise, wakes when another process writes a
 * matching event, ignores non-matching ones, and times out plainly.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { cliFor, fails, ok, run, RUNTIMES, sha256File, tempDb } from "./_helpers.ts";

let t: ReturnType<typeof tempDb>;
const R = "w1";
const orch = (...a: string[]) => t.cli.orch(...a);
const lastId = () => ok(orch("run", "show", "--run", R)).last_event_id as number;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(() => {
  t = tempDb();
  ok(orch("run", "init", "--run", R, "--goal", "wait tests"));
  ok(orch("task", "add", "--run", R, "--task", "A", "--title", "first"));
  ok(orch("task", "add", "--run", R, "--task", "B", "--title", "second"));
  ok(orch("dep", "add", "--run", R, "--task", "B", "--depends-on", "A"));
});
afterAll(() => t.cleanup());

/**
 * Starts `wait` in its own process and makes sure it is still blocking after
 * `ms`. Returns the process wrapped: an async function returning the promise
 * itself would wait for the process to end.
 */
async function blockingWait(args: string[], ms = 600): Promise<{ waiting: ReturnType<typeof t.cli.orchAsync> }> {
  const waiting = t.cli.orchAsync("wait", "--run", R, ...args);
  await pause(ms);
  expect(waiting.child.exitCode).toBeNull();
  return { waiting };
}

describe("wait", () => {
  test("returns matching events already after the cursor at once, with the run's last event id", () => {
    const all = ok(orch("wait", "--run", R, "--after-event", "0", "--timeout-seconds", "5"));
    expect(all.events.map((e: any) => e.type)).toEqual(["run_created", "task_added", "task_added", "dep_added"]);
    expect(all).toMatchObject({ ok: true, run_id: R, timed_out: false });
    const [created, addA, addB, dep] = all.events;
    expect(all.last_event_id).toBe(dep.id);
    expect(addA).toMatchObject({ run_id: R, type: "task_added", task_id: "A", actor: "leader", data: { title: "first" } });
    expect(dep).toMatchObject({ type: "dep_added", task_id: "B", data: { depends_on: "A" } });
    expect(created.id).toBeLessThan(addA.id);

    // only the requested types; the cursor still covers the events skipped
    const added = ok(orch("wait", "--run", R, "--for", "task_added", "--after-event", "0", "--timeout-seconds", "5"));
    expect(added.events.map((e: any) => e.task_id)).toEqual(["A", "B"]);
    expect(added.last_event_id).toBe(dep.id);
    // --after-event N means strictly after N
    const afterA = ok(orch("wait", "--run", R, "--for", "task_added", "--after-event", String(addA.id), "--timeout-seconds", "5"));
    expect(afterA.events.map((e: any) => e.id)).toEqual([addB.id]);
    // repeated --for and comma lists combine
    const two = ok(orch("wait", "--run", R, "--for", "run_created", "--for", "dep_added,task_added", "--after-event", String(addA.id)));
    expect(two.events.map((e: any) => e.type)).toEqual(["task_added", "dep_added"]);
  });

  test("times out plainly: ok, timed_out true, no events, the cursor unchanged", () => {
    const last = lastId();
    const r = ok(orch("wait", "--run", R, "--for", "task_done", "--after-event", "0", "--timeout-seconds", "1"));
    expect(r).toEqual({ ok: true, run_id: R, events: [], last_event_id: last, timed_out: true });
    const z = ok(orch("wait", "--run", R, "--after-event", String(last), "--timeout-seconds", "0"));
    expect(z).toMatchObject({ events: [], last_event_id: last, timed_out: true });
    const text = run(["--db", t.db, "wait", "--run", R, "--for", "task_done", "--after-event", String(last), "--timeout-seconds", "0"]);
    expect(text.code).toBe(0);
    expect(text.stdout.trim()).toBe(`timed out after 0s: no task_done event after ${last} (last event ${last})`);
  });

  test("a matching event written by another process wakes a blocked wait, which returns it", async () => {
    const cursor = lastId();
    const { waiting } = await blockingWait(["--for", "task_added", "--after-event", String(cursor), "--timeout-seconds", "60"]);
    ok(orch("task", "add", "--run", R, "--task", "C", "--title", "third"));
    const r = (await waiting).json;
    expect(r.ok).toBe(true);
    expect(r.timed_out).toBe(false);
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({ type: "task_added", task_id: "C" });
    expect(r.events[0].id).toBeGreaterThan(cursor);
    expect(r.last_event_id).toBe(r.events[0].id);
  });

  test("non-matching events do not wake it with a result; the matching one does", async () => {
    const cursor = lastId();
    const { waiting } = await blockingWait(["--for", "dep_added", "--after-event", String(cursor), "--timeout-seconds", "60"]);
    ok(orch("task", "add", "--run", R, "--task", "D", "--title", "fourth"));
    ok(orch("task", "add", "--run", R, "--task", "E", "--title", "fifth"));
    await pause(600);
    expect(waiting.child.exitCode).toBeNull(); // saw the changes, found nothing it waits for
    ok(orch("dep", "add", "--run", R, "--task", "E", "--depends-on", "D"));
    const r = (await waiting).json;
    expect(r.events.map((e: any) => [e.type, e.task_id, e.data.depends_on])).toEqual([["dep_added", "E", "D"]]);
    expect(r.last_event_id).toBe(lastId());
  });

  test("with only non-matching writes it times out with no events, its cursor past them", async () => {
    const cursor = lastId();
    const { waiting } = await blockingWait(["--for", "task_done,task_failed", "--after-event", String(cursor), "--timeout-seconds", "3"], 300);
    ok(orch("task", "add", "--run", R, "--task", "F", "--title", "sixth"));
    const r = (await waiting).json;
    expect(r).toMatchObject({ ok: true, events: [], timed_out: true });
    expect(r.last_event_id).toBe(lastId());
    expect(r.last_event_id).toBeGreaterThan(cursor);
  });

  test("a worker finishing wakes the leader waiting for task_blocked,task_done,task_failed", async () => {
    ok(orch("task", "add", "--run", R, "--task", "G", "--title", "worker task", "--default-to", "wk"));
    const d = ok(orch("dispatch", "--run", R, "--task", "G", "--execution-mode", "analysis"));
    const claim = ok(t.cli.inbox("claim", "--as", "wk", "--thread", String(d.attempt.thread_id)));
    const cursor = lastId();
    const { waiting } = await blockingWait(["--for", "task_blocked,task_done,task_failed", "--after-event", String(cursor), "--timeout-seconds", "60"]);
    ok(t.cli.inbox("done", "--token", claim.lease.token, "--body", "finished"));
    const r = (await waiting).json;
    expect(r.timed_out).toBe(false);
    expect(r.events.map((e: any) => [e.type, e.task_id])).toEqual([["task_done", "G"]]);
    expect(r.events[0]).toMatchObject({ attempt_id: d.attempt.id, thread_id: d.attempt.thread_id, data: { result: "finished" } });
  });

  // the file-metadata polling must see another process's rename under every runtime (Deno's and Bun's node:fs stat)
  for (const runtime of RUNTIMES) {
    test(`under ${runtime}, a blocked wait wakes on a write by the Node bundle`, async () => {
      const cursor = lastId();
      const waiting = cliFor(t.db, runtime).orchAsync("wait", "--run", R, "--for", "task_added", "--after-event", String(cursor), "--timeout-seconds", "60");
      await pause(runtime === "deno" ? 2500 : 1000);
      expect(waiting.child.exitCode).toBeNull();
      ok(orch("task", "add", "--run", R, "--task", `rt-${runtime}`, "--title", `written while ${runtime} waits`));
      const r = (await waiting).json;
      expect(r).toMatchObject({ ok: true, timed_out: false, last_event_id: lastId() });
      expect(r.events.map((e: any) => e.task_id)).toEqual([`rt-${runtime}`]);
    });
  }

  test("bad input is refused with its code and writes nothing", () => {
    const before = sha256File(t.db);
    const e = fails(orch("wait", "--run", R, "--for", "task_done,task_exploded", "--timeout-seconds", "1"), "usage");
    expect(e.message).toContain('unknown event type "task_exploded"');
    expect(e.hint).toContain("task_blocked");
    fails(orch("wait", "--run", R, "--for", ",", "--timeout-seconds", "1"), "usage");
    fails(orch("wait", "--run", "nope", "--timeout-seconds", "1"), "not_found");
    fails(orch("wait", "--run", "bad run", "--timeout-seconds", "1"), "usage");
    fails(orch("wait", "--timeout-seconds", "1"), "usage");
    fails(orch("wait", "--run", R, "--timeout-seconds", "-1"), "usage");
    fails(orch("wait", "--run", R, "--timeout-seconds", "soon"), "usage");
    fails(orch("wait", "--run", R, "--after-event", "x"), "usage");
    const past = fails(orch("wait", "--run", R, "--after-event", "99999", "--timeout-seconds", "1"), "usage");
    expect(past.message).toContain("--after-event 99999 is past the end of the event log");
    expect(sha256File(t.db)).toBe(before);
  });
});
