/**
 * The leader's planning commands through the real CLI: run init/show/list,
 * task add/show, dep add, ready. Each: the happy path, repeat-safety, and bad
 * input refused with its error code and the database file byte-for-byte
 * unchanged. Every successful change is checked against the event log.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { fails, ok, sha256File, sqlite3, tempDb, tempDir, run } from "./_helpers.ts";
import * as path from "node:path";

type Cli = ReturnType<typeof tempDb>;
let t: Cli;
const R = "plan1";

beforeAll(() => {
  t = tempDb();
});
afterAll(() => t.cleanup());

const orch = (...a: string[]) => t.cli.orch(...a);

/** The event log as "type task_id" lines, read with the sqlite3 shell (independent of orch's code). */
function eventLog(db = t.db): string[] {
  const out = sqlite3(db, "SELECT id || ' ' || type || ' ' || coalesce(task_id, '-') FROM events ORDER BY id");
  return out === "" ? [] : out.split("\n");
}

/** Runs a command that must fail with `code` and leave the database file exactly as it was. */
function refused(code: string, ...args: string[]): any {
  const before = sha256File(t.db);
  const events = eventLog();
  const r = orch(...args);
  const err = fails(r, code);
  expect(sha256File(t.db)).toBe(before);
  expect(eventLog()).toEqual(events);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace anywhere
  return err;
}

/** Runs a command that must succeed and append exactly these events ("type task"). */
function appends(expected: string[], ...args: string[]): any {
  const before = eventLog();
  const json = ok(orch(...args));
  const after = eventLog();
  expect(after.slice(0, before.length)).toEqual(before);
  expect(after.slice(before.length).map((l) => l.split(" ").slice(1).join(" "))).toEqual(expected);
  return json;
}

/** Runs a command that must succeed without touching the file (repeats, reads). */
function unchanged(...args: string[]): any {
  const before = sha256File(t.db);
  const json = ok(orch(...args));
  expect(sha256File(t.db)).toBe(before);
  return json;
}

const BAD_IDS = ["bad id", "../etc", "-lead", ".hidden", "a/b", "x".repeat(65), "ends.lock", "é"];

describe("run init", () => {
  test("creates a run with run_created, and a repeat says it existed without writing", () => {
    const r = appends(["run_created -"], "run", "init", "--run", R, "--goal", "Ship the planner", "--summary", "all of issue 3");
    expect(r).toMatchObject({ ok: true, existed: false, run: { id: R, goal: "Ship the planner", summary: "all of issue 3", status: "active" } });
    expect(r.run.created_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    const again = unchanged("run", "init", "--run", R, "--goal", "Ship the planner", "--summary", "all of issue 3");
    expect(again).toMatchObject({ existed: true, run: r.run });
    // a flag left out of the repeat is not compared
    expect(unchanged("run", "init", "--run", R, "--goal", "Ship the planner").existed).toBe(true);
  });

  test("the same id with different content is a conflict naming each difference", () => {
    const e = refused("conflict", "run", "init", "--run", R, "--goal", "Something else", "--summary", "other");
    expect(e.message).toContain(`run ${R} already exists with different content`);
    expect(e.message).toContain('goal is "Ship the planner", not "Something else"');
    expect(e.message).toContain('summary is "all of issue 3", not "other"');
    expect(e.details.differences).toEqual([
      { field: "goal", existing: "Ship the planner", given: "Something else" },
      { field: "summary", existing: "all of issue 3", given: "other" },
    ]);
    const only = refused("conflict", "run", "init", "--run", R, "--goal", "Ship the planner", "--summary", "changed");
    expect(only.details.differences.map((d: any) => d.field)).toEqual(["summary"]);
  });

  test("bad input is a usage error and writes nothing", () => {
    for (const id of BAD_IDS) expect(refused("usage", "run", "init", "--run", id, "--goal", "g").message).toContain("--run");
    expect(refused("usage", "run", "init", "--run", "r9").message).toContain("--goal");
    expect(refused("usage", "run", "init", "--goal", "g").message).toContain("--run");
    expect(refused("usage", "run", "init", "--run", "r9", "--goal", "  ").message).toContain("--goal must not be empty");
    expect(refused("usage", "run", "init", "--run", "r9", "--goal", "g".repeat(16 * 1024 + 1)).message).toContain("--goal is longer than the limit of 16384 bytes");
    expect(refused("usage", "run", "init", "--run", "r9", "--goal", "g", "--summary", "s".repeat(16 * 1024 + 1)).message).toContain("--summary");
    expect(refused("usage", "run", "init", "--run", "r9", "--goal", "g", "--bogus").message).toContain("--bogus");
  });

  test("a missing database is db_missing, and nothing is created", () => {
    const d = tempDir();
    try {
      const db = path.join(d.dir, "none.db");
      fails(run(["--db", db, "--json", "run", "init", "--run", "r", "--goal", "g"]), "db_missing");
      expect(run(["--db", db, "--json", "run", "list"]).json.error.code).toBe("db_missing");
    } finally {
      d.cleanup();
    }
  });
});

describe("task add and task show", () => {
  test("adds tasks with task_added; a repeat (acceptance key order aside) says it existed", () => {
    const r = appends(["task_added T1"], "task", "add", "--run", R, "--task", "T1", "--title", "Skeleton", "--summary", "app structure", "--default-to", "foundation-worker");
    expect(r).toMatchObject({ existed: false, task: { run_id: R, id: "T1", title: "Skeleton", summary: "app structure", default_to: "foundation-worker", acceptance: null, status: "pending" } });
    const r2 = appends(["task_added T2"], "task", "add", "--run", R, "--task", "T2", "--title", "Flaky tests", "--acceptance-json", '{"kind":"analysis","checks":[1,2]}');
    expect(r2.task.acceptance).toEqual({ kind: "analysis", checks: [1, 2] });
    expect(r2.task.default_to).toBeNull();
    appends(["task_added T3"], "task", "add", "--run", R, "--task", "T3", "--title", "Admin CRUD");

    const again = unchanged("task", "add", "--run", R, "--task", "T2", "--title", "Flaky tests", "--acceptance-json", '{ "checks": [1,2], "kind": "analysis" }');
    expect(again).toMatchObject({ existed: true, task: { id: "T2", acceptance: { kind: "analysis", checks: [1, 2] } } });
    expect(unchanged("task", "add", "--run", R, "--task", "T1", "--title", "Skeleton").existed).toBe(true);
  });

  test("the same id with different content is a conflict naming the difference", () => {
    const e = refused("conflict", "task", "add", "--run", R, "--task", "T1", "--title", "Other title");
    expect(e.message).toContain(`task T1 of run ${R} already exists with different content: title is "Skeleton", not "Other title"`);
    const a = refused("conflict", "task", "add", "--run", R, "--task", "T2", "--title", "Flaky tests", "--acceptance-json", '{"kind":"code"}');
    expect(a.message).toContain('acceptance is {"checks":[1,2],"kind":"analysis"}, not {"kind":"code"}');
    expect(a.details.differences).toEqual([{ field: "acceptance", existing: { checks: [1, 2], kind: "analysis" }, given: { kind: "code" } }]);
    const d = refused("conflict", "task", "add", "--run", R, "--task", "T1", "--title", "Skeleton", "--default-to", "someone-else");
    expect(d.message).toContain('default_to is "foundation-worker", not "someone-else"');
    const s = refused("conflict", "task", "add", "--run", R, "--task", "T3", "--title", "Admin CRUD", "--acceptance-json", "{}");
    expect(s.message).toContain("acceptance is unset, not {}");
  });

  test("bad input is refused with its code and writes nothing", () => {
    expect(refused("not_found", "task", "add", "--run", "nope", "--task", "T9", "--title", "x").message).toContain("run nope does not exist");
    // (every id shape is covered under run init; the same schema checks --task)
    for (const id of ["bad id", "../etc", "x".repeat(65)]) refused("usage", "task", "add", "--run", R, "--task", id, "--title", "x");
    refused("usage", "task", "add", "--run", "bad run", "--task", "T9", "--title", "x");
    refused("usage", "task", "add", "--run", R, "--task", "T9", "--title", "x", "--default-to", "no spaces");
    expect(refused("usage", "task", "add", "--run", R, "--task", "T9").message).toContain("--title");
    expect(refused("usage", "task", "add", "--run", R, "--task", "T9", "--title", "").message).toContain("title must not be empty");
    expect(refused("usage", "task", "add", "--run", R, "--task", "T9", "--title", "t".repeat(201)).message).toContain("at most 200");
    expect(refused("usage", "task", "add", "--run", R, "--task", "T9", "--title", "two\nlines").message).toContain("one line");
    expect(refused("usage", "task", "add", "--run", R, "--task", "T9", "--title", "x", "--summary", "s".repeat(16 * 1024 + 1)).message).toContain("--summary is longer");
    // malformed and non-object acceptance
    expect(refused("usage", "task", "add", "--run", R, "--task", "T9", "--title", "x", "--acceptance-json", "{kind: analysis}").message).toContain("--acceptance-json is not valid JSON");
    for (const [json, what] of [["[1,2]", "an array"], ["42", "number"], ['"text"', "string"], ["null", "null"], ["true", "boolean"]]) {
      expect(refused("usage", "task", "add", "--run", R, "--task", "T9", "--title", "x", "--acceptance-json", json).message).toContain(`must be a JSON object ({...}), not ${what}`);
    }
    const big = JSON.stringify({ notes: "n".repeat(64 * 1024) });
    expect(refused("usage", "task", "add", "--run", R, "--task", "T9", "--title", "x", "--acceptance-json", big).message).toContain("longer than the limit of 65536 bytes");
  });

  test("task show prints the task, its dependencies, dependents and attempts", () => {
    const s = unchanged("task", "show", "--run", R, "--task", "T2");
    expect(s).toMatchObject({ task: { id: "T2", title: "Flaky tests", acceptance: { kind: "analysis", checks: [1, 2] } }, depends_on: [], dependents: [], waiting_on: [], ready: true, attempts: [] });
    refused("not_found", "task", "show", "--run", R, "--task", "T99");
    refused("not_found", "task", "show", "--run", "nope", "--task", "T1");
    refused("usage", "task", "show", "--run", R, "--task", "bad id");
    refused("usage", "task", "show", "--run", R);
  });
});

describe("dep add", () => {
  test("records dependencies (comma list and repeated flag) with one dep_added each; repeats say they existed", () => {
    const r = appends(["dep_added T2"], "dep", "add", "--run", R, "--task", "T2", "--depends-on", "T1");
    expect(r).toEqual({ ok: true, run_id: R, task_id: "T2", dependencies: [{ task_id: "T2", depends_on: "T1", existed: false }] });
    appends(["dep_added T3"], "dep", "add", "--run", R, "--task", "T3", "--depends-on", "T2");
    const again = unchanged("dep", "add", "--run", R, "--task", "T2", "--depends-on", "T1");
    expect(again.dependencies).toEqual([{ task_id: "T2", depends_on: "T1", existed: true }]);

    appends(["task_added T4"], "task", "add", "--run", R, "--task", "T4", "--title", "Report");
    appends(["task_added T5"], "task", "add", "--run", R, "--task", "T5", "--title", "Publish");
    const multi = appends(["dep_added T5", "dep_added T5", "dep_added T5"], "dep", "add", "--run", R, "--task", "T5", "--depends-on", "T3,T1", "--depends-on", "T4", "--depends-on", "T1");
    // T1 named twice is recorded once
    expect(multi.dependencies).toEqual([
      { task_id: "T5", depends_on: "T3", existed: false },
      { task_id: "T5", depends_on: "T1", existed: false },
      { task_id: "T5", depends_on: "T4", existed: false },
    ]);
  });

  test("a cycle is refused naming it, and nothing is written", () => {
    // T3 -> T2 -> T1 exists; T1 -> T3 closes the loop
    const e = refused("cycle", "dep", "add", "--run", R, "--task", "T1", "--depends-on", "T3");
    expect(e.message).toBe("adding T1 -> T3 would make a cycle: T1 -> T3 -> T2 -> T1");
    expect(e.details.cycle).toEqual(["T1", "T3", "T2", "T1"]);
    // all or nothing: a valid dependency beside the cycle is not recorded either
    refused("cycle", "dep", "add", "--run", R, "--task", "T1", "--depends-on", "T4,T3");
    expect(unchanged("task", "show", "--run", R, "--task", "T1").depends_on).toEqual([]);
  });

  test("self-dependencies, unknown tasks and bad ids are refused, writing nothing", () => {
    const self = refused("cycle", "dep", "add", "--run", R, "--task", "T4", "--depends-on", "T4");
    expect(self.message).toContain("task T4 cannot depend on itself (T4 -> T4)");
    expect(refused("not_found", "dep", "add", "--run", R, "--task", "T4", "--depends-on", "T1,NOPE").message).toContain("task NOPE does not exist in run plan1");
    expect(refused("not_found", "dep", "add", "--run", R, "--task", "NOPE", "--depends-on", "T1").message).toContain("task NOPE does not exist");
    refused("not_found", "dep", "add", "--run", "nope", "--task", "T4", "--depends-on", "T1");
    refused("usage", "dep", "add", "--run", R, "--task", "T4", "--depends-on", "T1,bad id");
    refused("usage", "dep", "add", "--run", R, "--task", "T4", "--depends-on", ",");
    refused("usage", "dep", "add", "--run", R, "--task", "T4");
    refused("usage", "dep", "add", "--run", R, "--task", "../T4", "--depends-on", "T1");
  });
});

describe("ready, run show, run list", () => {
  test("ready lists pending tasks with every dependency done, in the order they were added", () => {
    // add tasks whose ids sort the other way round: the order is the add order, not the id
    appends(["task_added zz"], "task", "add", "--run", R, "--task", "zz", "--title", "added first");
    appends(["task_added aa"], "task", "add", "--run", R, "--task", "aa", "--title", "added second");
    const r = unchanged("ready", "--run", R);
    expect(r.run_id).toBe(R);
    expect(r.tasks.map((x: any) => x.id)).toEqual(["T1", "T4", "zz", "aa"]);
    expect(r.tasks[0]).toMatchObject({ id: "T1", title: "Skeleton", default_to: "foundation-worker", status: "pending" });
    expect(unchanged("ready", "--run", R).tasks).toEqual(r.tasks);
    refused("not_found", "ready", "--run", "nope");
    refused("usage", "ready", "--run", "no such/run");
    refused("usage", "ready");
  });

  test("ready follows a dispatch, and dep add is refused once a task is dispatched", () => {
    const d = appends(["task_dispatched aa"], "dispatch", "--run", R, "--task", "aa", "--execution-mode", "analysis", "--to", "w1");
    expect(d.attempt.status).toBe("dispatched");
    expect(unchanged("ready", "--run", R).tasks.map((x: any) => x.id)).toEqual(["T1", "T4", "zz"]);
    expect(refused("invalid_state", "dep", "add", "--run", R, "--task", "aa", "--depends-on", "zz").message).toContain("task aa is already dispatched");
  });

  test("run show and run list report counts; text output is an aligned table", () => {
    const s = unchanged("run", "show", "--run", R);
    expect(s.run).toMatchObject({ id: R, goal: "Ship the planner", status: "active" });
    expect(s.counts).toEqual({ total: 7, pending: 6, ready: 3, dispatched: 1, running: 0, blocked: 0, done: 0, failed: 0, cancelled: 0 });
    expect(s.last_event_id).toBe(Number(sqlite3(t.db, `SELECT max(id) FROM events WHERE run_id = '${R}'`)));
    refused("not_found", "run", "show", "--run", "nope");
    refused("usage", "run", "show", "--run", "bad id");

    appends(["run_created -"], "run", "init", "--run", "plan2", "--goal", "Second run");
    const l = unchanged("run", "list");
    expect(l.runs.map((x: any) => [x.id, x.status, x.counts.total])).toEqual([[R, "active", 7], ["plan2", "active", 0]]);

    const text = run(["--db", t.db, "run", "list"]);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^RUN\s+STATUS\s+TASKS\s+DONE\s+GOAL$/);
    const col = lines[0]!.indexOf("STATUS");
    for (const line of lines.slice(1)) expect(line.slice(col).startsWith("active")).toBe(true);
  });
});

describe("--help of each planning command is enough to use it", () => {
  const COMMANDS: [string[], string[]][] = [
    [["run", "init"], ["--run", "--goal", "--summary"]],
    [["run", "show"], ["--run"]],
    [["run", "list"], []],
    [["task", "add"], ["--run", "--task", "--title", "--summary", "--default-to", "--acceptance-json"]],
    [["task", "show"], ["--run", "--task"]],
    [["dep", "add"], ["--run", "--task", "--depends-on"]],
    [["ready"], ["--run"]],
    [["cancel"], ["--run", "--task", "--body", "--body-file"]],
    [["status"], ["--run"]],
    [["wait"], ["--run", "--for", "--after-event", "--timeout-seconds"]],
  ];
  for (const [cmd, flags] of COMMANDS) {
    test(`orch ${cmd.join(" ")} --help`, () => {
      const r = run([...cmd, "--help"]);
      expect(r.code).toBe(0);
      const help = r.stdout;
      // every option line has a description, and the expected flags are there
      const optionLines = help.split("\n").filter((l) => /^\s{2}(-\w, )?--[a-z-]+/.test(l));
      const documented = optionLines.map((l) => l.trim().match(/^(?:-\w, )?(--[a-z-]+)/)![1]);
      for (const f of [...flags, "--db", "--json"]) expect(documented).toContain(f);
      for (const l of optionLines) expect(l.trim().split(/\s{2,}/).length).toBeGreaterThanOrEqual(2);
      expect(help).toContain("Output (--json):");
      expect(help).toContain("Errors:");
      expect(help).toMatch(/Example:\n\s+orch --db \.\/coord\.db --json /);
      for (const f of flags) if (f !== "--body-file") expect(help).toMatch(new RegExp(`${f}[ =]`));
    });
  }

  test("wait --help lists every event type with its meaning, including the seed's", () => {
    const help = run(["wait", "--help"]).stdout;
    for (const type of ["task_blocked", "task_done", "task_failed", "run_created", "task_added", "dep_added", "task_cancelled", "run_cancelled", "lease_expired"]) {
      expect(help).toMatch(new RegExp(`\\n\\s+${type}\\s+\\S`));
    }
  });

  test("required flags are marked in help", () => {
    expect(run(["task", "add", "--help"]).stdout).toMatch(/--title <text>\s+\(required\)/);
    expect(run(["dep", "add", "--help"]).stdout).toMatch(/--depends-on <ids\.\.\.>\s+\(required\)/);
  });
});

