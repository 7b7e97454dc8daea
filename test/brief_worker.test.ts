/**
 * orch-worker-brief through the real CLI: the brief's content in analysis and
 * code mode, and that the inbox commands it prints really work when a worker
 * runs them as written; stdin, bad and mismatched JSON, templates.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { BUNDLE, fails, ok, ROOT, run, RUNTIMES, tempDb, tempDir, type RunOptions } from "./_helpers.ts";
import { BRIEF_PLACEHOLDERS } from "../lib/brief.ts";

type Db = ReturnType<typeof tempDb>;
let d: Db;
let inboxWrapper: string;
let t1Json: string;
let t1: any;

const brief = (args: string[], o: RunOptions = {}) => run(["--db", d.db, ...args], { entry: "orch-worker-brief", ...o });

/** Runs one command line exactly as the brief prints it. */
function sh(line: string) {
  const r = spawnSync("sh", ["-c", line], { cwd: d.dir, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 60_000 });
  let json: any;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new Error(`not one JSON object from: ${line}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return { code: r.status, json };
}

/** The command lines of a brief that start with the inbox command. */
function inboxLines(text: string): string[] {
  return text.split("\n").map((l) => l.trim()).filter((l) => l.startsWith(`${inboxWrapper} `));
}

function lineWith(text: string, verb: string): string {
  const line = inboxLines(text).find((l) => l.includes(` --json ${verb} `));
  if (!line) throw new Error(`no \`${verb}\` command in the brief:\n${text}`);
  return line;
}

beforeAll(() => {
  d = tempDb();
  // How a worker would run inbox: a program of its own (the skill launcher, in real life).
  inboxWrapper = path.join(d.dir, "inbox");
  writeFileSync(inboxWrapper, `#!/bin/sh\nORCH_ENTRY=inbox exec ${JSON.stringify(process.execPath)} ${JSON.stringify(BUNDLE)} "$@"\n`);
  chmodSync(inboxWrapper, 0o755);
  ok(d.cli.orch("run", "init", "--run", "blog_mvp_001", "--goal", "Build blog MVP", "--summary", "Public blog plus admin CRUD"));
  ok(d.cli.orch("task", "add", "--run", "blog_mvp_001", "--task", "T1", "--title", "Summarize flaky tests", "--summary", "Read the CI logs and report next steps", "--default-to", "qa-worker", "--acceptance-json", '{"kind":"analysis","must":["root cause"]}'));
  ok(d.cli.orch("task", "add", "--run", "blog_mvp_001", "--task", "T2", "--title", "Second look", "--default-to", "qa-worker"));
  const r = d.cli.orch("dispatch", "--run", "blog_mvp_001", "--task", "T1", "--execution-mode", "analysis", "--body", "Read the last 20 CI logs.");
  t1 = ok(r);
  t1Json = path.join(d.dir, "t1-dispatch.json");
  writeFileSync(t1Json, r.stdout);
});
afterAll(() => d?.cleanup());

describe("the default brief (analysis mode)", () => {
  test("names the worker, goal, task, acceptance, thread, attempt and the absolute database", () => {
    const r = brief(["--dispatch-json", t1Json, "--inbox-command", inboxWrapper]);
    expect(r.code).toBe(0);
    const text = r.stdout;
    expect(text).toContain("You are **qa-worker**");
    expect(text).toContain("Build blog MVP");
    expect(text).toContain("Summarize flaky tests");
    expect(text).toContain("Read the CI logs and report next steps");
    expect(text).toContain('"must": [\n    "root cause"\n  ]');
    expect(text).toContain("Read the last 20 CI logs.");
    expect(text).toContain(`Database \`${d.db}\`, thread ${t1.attempt.thread_id}, attempt 1 (analysis mode)`);
    expect(text).toContain("Analysis mode: there is no worktree");
    expect(text).not.toContain("{{");
    expect(text).not.toContain("<!--");
    expect(path.isAbsolute(d.db)).toBe(true);
    // every worker verb is there, with the database filled in
    const prefix = `${inboxWrapper} --db ${d.db} --json`;
    expect(lineWith(text, "claim")).toBe(`${prefix} claim --as qa-worker --thread ${t1.attempt.thread_id}`);
    for (const verb of ["heartbeat", "progress", "ask", "wait", "done", "fail"]) expect(lineWith(text, verb).startsWith(`${prefix} ${verb} `)).toBe(true);
    expect(lineWith(text, "ask")).toMatch(/--wait --timeout-seconds \d+$/);
    expect(lineWith(text, "done")).toContain("--result-json '{");
  });

  test("a relative --db is made absolute; the default inbox command is `inbox`", () => {
    const r = run(["--db", path.basename(d.db), "--dispatch-json", t1Json], { entry: "orch-worker-brief", cwd: d.dir, env: { ORCH_INBOX_COMMAND: "" } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`inbox --db ${d.db} --json claim --as qa-worker --thread ${t1.attempt.thread_id}`);
  });

  test("--json prints {ok: true, brief}", () => {
    const text = brief(["--dispatch-json", t1Json]).stdout;
    const j = ok(brief(["--json", "--dispatch-json", t1Json]));
    expect(Object.keys(j).sort()).toEqual(["brief", "ok"]);
    expect(j.brief).toBe(text);
  });

  test("reads the dispatch JSON from stdin with -, and `orch worker-brief` is the same program", () => {
    const fromFile = brief(["--dispatch-json", t1Json]).stdout;
    const fromStdin = brief(["--dispatch-json", "-"], { input: readFileSync(t1Json, "utf8") });
    expect(fromStdin.code).toBe(0);
    expect(fromStdin.stdout).toBe(fromFile);
    const sub = run(["--db", d.db, "worker-brief", "--dispatch-json", t1Json], { entry: "orch" });
    expect(sub.stdout).toBe(fromFile);
  });

  test("every runtime renders the same brief (the embedded template is the reference file)", () => {
    const reference = brief(["--dispatch-json", t1Json]).stdout;
    for (const runtime of RUNTIMES) expect(brief(["--dispatch-json", t1Json], { runtime }).stdout).toBe(reference);
  });
});

describe("a worker following the brief word for word", () => {
  test("claim, progress, heartbeat, ask (times out), wait, done: the task ends done", () => {
    const text = brief(["--dispatch-json", t1Json, "--inbox-command", inboxWrapper]).stdout;
    const claim = sh(lineWith(text, "claim"));
    expect(claim.json.ok).toBe(true);
    const token: string = claim.json.lease.token;
    const withToken = (l: string) => l.replace("--token TOKEN", `--token ${token}`);
    expect(sh(withToken(lineWith(text, "progress"))).json.ok).toBe(true);
    expect(sh(withToken(lineWith(text, "heartbeat"))).json.ok).toBe(true);
    const asked = sh(withToken(lineWith(text, "ask")).replace(/--timeout-seconds \d+/, "--timeout-seconds 1"));
    expect(asked.json).toMatchObject({ ok: true, timed_out: true, answer: null });
    const qid = asked.json.message.id;
    ok(d.cli.orch("answer", "--run", "blog_mvp_001", "--task", "T1", "--body", "Yes."));
    const waited = sh(withToken(lineWith(text, "wait")).replace("MESSAGE_ID", String(qid)).replace(/--timeout-seconds \d+/, "--timeout-seconds 5"));
    expect(waited.json.messages.map((m: any) => [m.kind, m.body])).toEqual([["answer", "Yes."]]);
    const done = sh(withToken(lineWith(text, "done")));
    expect(done.json.ok).toBe(true);
    const status = ok(d.cli.orch("status", "--run", "blog_mvp_001"));
    expect(status.tasks.find((x: any) => x.id === "T1").status).toBe("done");
  });

  test("the fail command ends the attempt failed", () => {
    const r = d.cli.orch("dispatch", "--run", "blog_mvp_001", "--task", "T2", "--execution-mode", "analysis");
    const j = ok(r);
    const text = brief(["--dispatch-json", "-", "--inbox-command", inboxWrapper], { input: r.stdout }).stdout;
    expect(text).toContain(`claim --as qa-worker --thread ${j.attempt.thread_id}`);
    const token = sh(lineWith(text, "claim")).json.lease.token;
    expect(sh(lineWith(text, "fail").replace("--token TOKEN", `--token ${token}`)).json.ok).toBe(true);
    const status = ok(d.cli.orch("status", "--run", "blog_mvp_001"));
    expect(status.tasks.find((x: any) => x.id === "T2").status).toBe("failed");
  });

  test("an attempt that has ended is refused; the retry's JSON gives a brief for the new attempt", () => {
    // T2's attempt 1 failed in the test above (run in order)
    const lines = spawnSync("sh", ["-c", `${JSON.stringify(process.execPath)} ${JSON.stringify(BUNDLE)} --db ${JSON.stringify(d.db)} --json task show --run blog_mvp_001 --task T2`], { encoding: "utf8", env: { ...process.env, ORCH_ENTRY: "orch" } });
    const a1 = JSON.parse(lines.stdout).attempts[0];
    expect(a1.status).toBe("failed");
    const stale = { ok: true, run_id: "blog_mvp_001", task: { id: "T2" }, attempt: a1 };
    const e = fails(brief(["--json", "--dispatch-json", "-"], { input: JSON.stringify(stale) }), "invalid_state");
    expect(e.message).toContain("already failed");
    const retry = d.cli.orch("retry", "--run", "blog_mvp_001", "--task", "T2");
    const text = brief(["--dispatch-json", "-"], { input: retry.stdout }).stdout;
    expect(text).toContain(`thread ${ok(retry).attempt.thread_id}, attempt 2 (analysis mode)`);
  });
});

describe("code mode", () => {
  test("the brief gives the worktree, branch and base commit and the rule to work and commit only there", () => {
    const t = tempDir("orch-brief-code-");
    try {
      const repo = path.join(t.dir, "repo");
      mkdirSync(repo);
      const git = (...a: string[]) => {
        const r = spawnSync("git", ["-C", repo, ...a], { encoding: "utf8" });
        if (r.status !== 0) throw new Error(r.stderr);
        return r.stdout.trim();
      };
      git("init", "-q", "-b", "main");
      git("config", "user.name", "t");
      git("config", "user.email", "t@example.invalid");
      writeFileSync(path.join(repo, "a.txt"), "a\n");
      git("add", "a.txt");
      git("commit", "-q", "-m", "base");
      const head = git("rev-parse", "HEAD");
      const cli = tempDb();
      try {
        ok(cli.cli.orch("run", "init", "--run", "R1", "--goal", "Ship the parser"));
        ok(cli.cli.orch("task", "add", "--run", "R1", "--task", "P1", "--title", "Write the parser", "--default-to", "coder"));
        const r = cli.cli.orch("dispatch", "--run", "R1", "--task", "P1", "--execution-mode", "code", "--repo-path", repo, "--base-ref", "main");
        const a = ok(r).attempt;
        const out = run(["--db", cli.db, "--dispatch-json", "-"], { entry: "orch-worker-brief", input: r.stdout });
        expect(out.code).toBe(0);
        const text = out.stdout;
        expect(a.worktree_path).toBeTruthy();
        expect(text).toContain("Code mode: this attempt has its own git worktree");
        expect(text).toContain(`- worktree: ${a.worktree_path}`);
        expect(text).toContain(`- branch: ${a.branch}`);
        expect(text).toContain(`- base: main at commit ${head}`);
        expect(text).toContain(`- repository: ${realpathSync(repo)}`);
        expect(text).toContain(`Start there:\n\n    cd ${a.worktree_path}\n`);
        expect(text).toContain(`commit your work on its\nbranch (${a.branch}) before you finish`);
        expect(text).toContain("(code mode)");
        expect(text).not.toContain("Analysis mode");
      } finally {
        cli.cleanup();
      }
    } finally {
      t.cleanup();
    }
  });
});

describe("bad input is a clear usage error", () => {
  test("--dispatch-json is required, and must exist", () => {
    expect(fails(brief(["--json"]), "usage").message).toContain("--dispatch-json");
    expect(fails(brief(["--json", "--dispatch-json", path.join(d.dir, "nope.json")]), "usage").message).toContain("no such file");
  });

  test("text that is not JSON", () => {
    const e = fails(brief(["--json", "--dispatch-json", "-"], { input: "{not json" }), "usage");
    expect(e.message).toMatch(/the dispatch JSON on stdin is not JSON/);
    expect(fails(brief(["--json", "--dispatch-json", "-"], { input: "" }), "usage").message).toContain("is empty");
  });

  test("JSON that is not a dispatch result names what is wrong", () => {
    const status = d.cli.orch("status", "--run", "blog_mvp_001").stdout;
    const e = fails(brief(["--json", "--dispatch-json", "-"], { input: status }), "usage");
    expect(e.message).toContain("does not match a dispatch result");
    expect(e.message).toContain("attempt: is missing");
    const wrongType = JSON.parse(readFileSync(t1Json, "utf8"));
    wrongType.attempt.thread_id = "one";
    expect(fails(brief(["--json", "--dispatch-json", "-"], { input: JSON.stringify(wrongType) }), "usage").message).toContain("attempt.thread_id");
    const code = JSON.parse(readFileSync(t1Json, "utf8"));
    code.attempt.execution_mode = "code";
    expect(fails(brief(["--json", "--dispatch-json", "-"], { input: JSON.stringify(code) }), "usage").message).toContain("attempt.worktree_path: is required for execution_mode code");
  });

  test("an error result from a failed dispatch is named as such", () => {
    const r = d.cli.orch("dispatch", "--run", "blog_mvp_001", "--task", "NOPE", "--execution-mode", "analysis");
    const e = fails(brief(["--json", "--dispatch-json", "-"], { input: r.stdout }), "usage");
    expect(e.message).toContain("is an error result (not_found");
  });

  test("a dispatch JSON from another database is refused, pointing at the right one", () => {
    const other = tempDb();
    try {
      const e = fails(run(["--db", other.db, "--json", "--dispatch-json", t1Json], { entry: "orch-worker-brief" }), "not_found");
      expect(e.message).toContain(`is not in the database ${other.db}`);
      expect(e.hint).toContain(d.db);
    } finally {
      other.cleanup();
    }
  });
});

describe("templates", () => {
  test("a custom template: placeholders filled, leading comment dropped, empty-only lines dropped", () => {
    const file = path.join(d.dir, "mine.md");
    writeFileSync(file, "<!-- my notes: {{not_checked_here}} -->\nHi {{ worker }}, thread {{thread_id}} in {{db}}.\n{{run_summary}}\n\n{{task_summary}}\n\nRun: {{inbox}} show --thread {{thread_id}}\n");
    ok(d.cli.orch("task", "add", "--run", "blog_mvp_001", "--task", "T9", "--title", "No summary", "--default-to", "w9"));
    const r = d.cli.orch("dispatch", "--run", "blog_mvp_001", "--task", "T9", "--execution-mode", "analysis");
    const a = ok(r).attempt;
    const out = brief(["--dispatch-json", "-", "--template", file, "--inbox-command", "inbox"], { input: r.stdout });
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(`Hi w9, thread ${a.thread_id} in ${d.db}.\nPublic blog plus admin CRUD\n\nRun: inbox --db ${d.db} --json show --thread ${a.thread_id}\n`);
  });

  test("an unknown placeholder is an error naming it and its line; nothing is printed", () => {
    const file = path.join(d.dir, "typo.md");
    writeFileSync(file, "<!--\ndocs\n-->\nHi {{worker}}\nthread {{thread}}\n");
    const r = brief(["--json", "--dispatch-json", t1Json, "--template", file]);
    const e = fails(r, "usage");
    expect(e.message).toBe(`template ${file}: unknown placeholder {{thread}} (line 5)`);
    expect(e.hint).toContain("{{thread_id}}");
    const text = brief(["--dispatch-json", t1Json, "--template", file]);
    expect(text.code).toBe(2);
    expect(text.stdout).toBe("");
  });

  test("every placeholder is documented in --help and at the top of the template reference, and used by it", () => {
    const help = brief(["--help"]).stdout;
    const reference = readFileSync(path.join(ROOT, "skills/orch/references/worker-brief-template.md"), "utf8");
    const [comment, body] = reference.split("-->");
    const documented = [...comment.matchAll(/^ {2}\{\{(\w+)\}\}/gm)].map((m) => m[1]);
    expect(documented).toEqual(Object.keys(BRIEF_PLACEHOLDERS));
    for (const name of Object.keys(BRIEF_PLACEHOLDERS)) expect(help).toContain(`{{${name}}}`);
    for (const name of ["worker", "thread_id", "db", "inbox", "worktree_section", "run_goal", "task_title", "acceptance"]) expect(body).toContain(`{{${name}}}`);
  });
});
