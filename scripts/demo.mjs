#!/usr/bin/env node
/**
 * `npm run demo`: plays a whole leader/worker run on a temporary database.
 *
 * Every step is a real process of the built CLI (dist/orch.mjs), the way
 * agents use it: the leader plans, dispatches what is ready and sits in
 * `orch wait`; simulated workers claim their threads, report progress, one asks
 * a question and waits for the answer in the same command (`inbox ask --wait`),
 * the leader sees it (`wait`, `blocked`) and answers, dependent work becomes
 * ready and is dispatched. The final `orch status` is printed at the end.
 *
 * Bounded: every command has a timeout and the whole run a deadline, so the
 * demo always ends (exit 0 when the run is done, 1 otherwise).
 * Options: --keep (keep the temporary directory and print its path).
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLE = path.join(ROOT, "dist", "orch.mjs");
const RUN = "flaky-ci";
// A normal run takes about 15 s; the bound is for a badly overloaded machine.
const DEADLINE_MS = 90_000;
const COMMAND_TIMEOUT_MS = 15_000;
const KEEP = process.argv.includes("--keep");

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code, s) => (color ? `\u001b[${code}m${s}\u001b[0m` : s);
const WHO_COLOR = { leader: 36, "worker-a": 32, "worker-b": 33, "worker-c": 35, "worker-d": 34 };
function say(who, text) {
  const tag = who.padEnd(8);
  console.log(`${paint(WHO_COLOR[who] ?? 34, tag)} │ ${text}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (!existsSync(BUNDLE)) {
  console.error(`${BUNDLE} is missing: run \`npm run build\` first (\`npm run demo\` does it for you)`);
  process.exit(1);
}

const dir = mkdtempSync(path.join(tmpdir(), "orch-demo-"));
const DB = path.join(dir, "coord.db");
const REPO = path.join(dir, "app");
const started = Date.now();
const remainingMs = () => DEADLINE_MS - (Date.now() - started);

/** Runs one CLI command as its own process; resolves with its JSON (or text without json). */
function cli(entry, args, { json = true, timeoutMs = COMMAND_TIMEOUT_MS } = {}) {
  const argv = [BUNDLE, "--db", DB, ...(json ? ["--json"] : []), ...args];
  const child = spawn(process.execPath, argv, { env: { ...process.env, ORCH_ENTRY: entry, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill(), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (!json) return code === 0 ? resolve(out) : reject(new Error(`${entry} ${args[0]} failed (exit ${code}): ${err}`));
      let parsed;
      try {
        parsed = JSON.parse(out);
      } catch {
        return reject(new Error(`${entry} ${args.join(" ")}: no JSON output (exit ${code}) ${err}`));
      }
      if (!parsed.ok) return reject(new Error(`${entry} ${args[0]}: ${parsed.error.code}: ${parsed.error.message}`));
      resolve(parsed);
    });
  });
}
const orch = (...args) => cli("orch", args);
const inbox = (...args) => cli("inbox", args);

// ---- the plan ------------------------------------------------------------------

/** Tasks of the demo run: who does them, how they are dispatched, what the worker does. */
const TASKS = [
  {
    id: "logs",
    title: "Collect the last 50 CI logs",
    worker: "worker-a",
    dispatch: ["--execution-mode", "analysis"],
    work: async (w) => {
      await w.progress("downloaded 50 logs from CI");
      await w.progress("extracted 14 failing test runs");
      await w.done("14 failing runs across 6 tests; logs saved", { failing_runs: 14, tests: 6 });
    },
  },
  {
    id: "triage",
    title: "Classify the failures: flaky or real",
    worker: "worker-b",
    dispatch: ["--execution-mode", "analysis", "--body", "Classify each failing test as flaky or real. Ask if the rules are unclear."],
    work: async (w) => {
      await w.progress("9 tests fail intermittently, 3 fail every time");
      const answer = await w.ask("Two of the intermittent tests are quarantined already. Count them as flaky?");
      await w.progress(answer.payload?.count_quarantined === false ? "leaving the 2 quarantined tests out" : "counting the quarantined tests");
      await w.done("7 flaky (timeouts in the DB pool), 3 real regressions", { flaky: 7, real: 3 });
    },
  },
  {
    id: "report",
    title: "Write the flaky-test report",
    worker: "worker-c",
    after: ["logs", "triage"],
    dispatch: ["--execution-mode", "analysis"],
    work: async (w) => {
      await w.progress("drafting from the triage result");
      await w.done("report written: raise the DB pool timeout, fix 3 regressions", { sections: 3 });
    },
  },
  // ==== CODE MODE ====================================================================
  // A code-mode task: dispatch makes branch orch/RUN/fix/a1 and a fresh worktree of
  // REPO (a throw-away git repository made in setupCodeMode); the worker edits and
  // commits there; finishCodeMode runs `orch cleanup`, which removes the worktree and
  // keeps the branch, because it holds the fix.
  {
    id: "fix",
    title: "Raise the DB pool timeout (a code change)",
    worker: "worker-d",
    after: ["triage"],
    dispatch: ["--execution-mode", "code", "--repo-path", REPO],
    work: async (w) => {
      const { worktree_path: wt, branch, base_commit: base } = w.claim.messages.find((m) => m.kind === "assignment").payload;
      await w.progress(`working in ${wt} (branch ${branch}, from ${base.slice(0, 7)})`);
      writeFileSync(path.join(wt, "db.json"), `${JSON.stringify({ pool: { size: 10, timeout_ms: 30000 } }, null, 2)}\n`);
      git(wt, "commit", "-q", "-a", "-m", "Raise the DB pool timeout to 30 s (flaky CI)");
      const commit = git(wt, "rev-parse", "--short", "HEAD");
      await w.done(`committed ${commit} on ${branch}`, { branch, commit });
    },
  },
  // ==================================================================================
];

/** git with its arguments as an array (no shell), in `cwd`; returns stdout. */
function git(cwd, ...args) {
  return execFileSync("git", ["-C", cwd, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** Code mode, part 1: a temporary git repository with one commit, for the "fix" task. */
async function setupCodeMode() {
  mkdirSync(REPO);
  git(REPO, "init", "-q", "-b", "main");
  git(REPO, "config", "user.name", "orch demo");
  git(REPO, "config", "user.email", "demo@example.invalid");
  writeFileSync(path.join(REPO, "db.json"), `${JSON.stringify({ pool: { size: 10, timeout_ms: 5000 } }, null, 2)}\n`);
  git(REPO, "add", "db.json");
  git(REPO, "commit", "-q", "-m", "initial config");
  say("leader", `code-mode repository ${path.basename(REPO)} at ${git(REPO, "rev-parse", "--short", "HEAD")} (main)`);
}

/** Code mode, part 2: `orch cleanup` removes the finished attempts' worktrees; the branch with the fix stays. */
async function finishCodeMode() {
  say("leader", paint(2, `orch cleanup --run ${RUN} --all-completed --delete-branches`));
  const r = await orch("cleanup", "--run", RUN, "--all-completed", "--delete-branches");
  for (const x of r.removed) say("leader", `cleanup removed ${x.path} (${x.bytes} bytes)`);
  for (const b of r.branches_kept) say("leader", `kept branch ${b.branch}: ${b.reason.split(";")[0]}`);
  say("leader", `the fix: ${git(REPO, "log", "--oneline", "-1", "orch/" + RUN + "/fix/a1")}  (git worktree list: ${git(REPO, "worktree", "list").split("\n").length} entry)`);
}

// ---- a simulated worker: every action is a CLI process ---------------------------

const workerFailures = [];

function startWorker(task, attempt) {
  const name = attempt.assigned_to;
  const run = async () => {
    await sleep(150);
    const claim = await inbox("claim", "--as", name, "--thread", String(attempt.thread_id), "--lease-seconds", "60");
    const token = claim.lease.token;
    say(name, `claimed thread ${attempt.thread_id} (${task.id}); lease until ${claim.lease.expires_at.slice(11, 19)}`);
    const w = {
      claim,
      progress: async (body) => {
        await sleep(100);
        await inbox("progress", "--token", token, "--body", body);
        say(name, `progress: ${body}`);
      },
      ask: async (body) => {
        await sleep(100);
        say(name, `asks: ${body}  (waits for the answer: inbox ask --wait)`);
        const r = await cli("inbox", ["ask", "--token", token, "--body", body, "--wait", "--timeout-seconds", String(Math.max(1, Math.floor(remainingMs() / 1000)))], { timeoutMs: remainingMs() + 2000 });
        if (!r.answer) throw new Error(`${name}: no answer before the deadline`);
        say(name, `got the answer: ${r.answer.body}`);
        return r.answer;
      },
      done: async (body, result) => {
        await sleep(100);
        await inbox("done", "--token", token, "--body", body, "--result-json", JSON.stringify(result));
        say(name, `done: ${body}`);
      },
    };
    await task.work(w);
  };
  // a worker that fails is reported and ends the demo (the leader checks workerFailures)
  return run().catch((err) => {
    say(name, paint(31, `failed: ${err.message}`));
    workerFailures.push(err);
  });
}

// ---- the leader ------------------------------------------------------------------

async function dispatchReady(workers) {
  const ready = (await orch("ready", "--run", RUN)).tasks;
  for (const t of ready) {
    const task = TASKS.find((x) => x.id === t.id);
    const d = await orch("dispatch", "--run", RUN, "--task", t.id, ...task.dispatch);
    say("leader", `dispatch ${t.id} -> ${d.attempt.assigned_to} (${d.attempt.execution_mode}, attempt ${d.attempt.number}, thread ${d.attempt.thread_id})`);
    if (d.attempt.worktree_path) say("leader", `  worktree ${d.attempt.worktree_path} on branch ${d.attempt.branch}`);
    for (const note of d.notes ?? []) say("leader", `  note: ${note}`);
    workers.push(startWorker(task, d.attempt));
  }
}

async function main() {
  console.log(paint(1, `orch demo: one leader, ${TASKS.length} workers, one SQLite file (${DB})\n`));
  await inbox("init");
  await orch("run", "init", "--run", RUN, "--goal", "Find out why CI is flaky and write it up");
  say("leader", `run ${RUN} created`);
  await setupCodeMode();
  for (const t of TASKS) {
    await orch("task", "add", "--run", RUN, "--task", t.id, "--title", t.title, "--default-to", t.worker);
    if (t.after) await orch("dep", "add", "--run", RUN, "--task", t.id, "--depends-on", t.after.join(","));
    say("leader", `task ${t.id}: ${t.title}${t.after ? `  (after ${t.after.join(", ")})` : ""}`);
  }

  // the cursor is taken before any worker starts, so the leader's first wait cannot miss their events
  let cursor = (await orch("run", "show", "--run", RUN)).last_event_id;
  const workers = [];
  await dispatchReady(workers);
  let done = false;
  while (!done && remainingMs() > 0) {
    if (workerFailures.length > 0) throw workerFailures[0];
    const types = "task_blocked,task_done,task_failed,run_finished";
    say("leader", paint(2, `orch wait --for ${types} --after-event ${cursor}`));
    const w = await cli("orch", ["wait", "--run", RUN, "--for", types, "--after-event", String(cursor), "--timeout-seconds", String(Math.max(1, Math.min(10, Math.floor(remainingMs() / 1000))))], { timeoutMs: 30_000 });
    cursor = w.last_event_id;
    for (const e of w.events) {
      if (e.type === "task_blocked") {
        const open = (await orch("blocked", "--run", RUN)).blocked.find((b) => b.task.id === e.task_id);
        if (!open) continue;
        say("leader", `${e.task_id} is blocked: "${open.question.body}"`);
        const a = await orch("answer", "--run", RUN, "--task", e.task_id, "--body", "No: leave quarantined tests out of the count.", "--payload-json", '{"count_quarantined":false}');
        say("leader", `answer ${e.task_id}: "${a.answer.body}"`);
      } else if (e.type === "task_done") {
        say("leader", `${e.task_id} is done`);
      } else if (e.type === "task_failed") {
        throw new Error(`task ${e.task_id} failed: ${e.data.reason}`);
      } else if (e.type === "run_finished") {
        say("leader", "every task is done: the run is finished");
        done = true;
      }
    }
    if (!done && w.events.some((e) => e.type === "task_done")) await dispatchReady(workers);
  }
  // the workers have finished when the run is done; the bound only matters when something went wrong
  let timer;
  await Promise.race([Promise.all(workers), new Promise((r) => (timer = setTimeout(r, Math.max(0, remainingMs()))))]);
  clearTimeout(timer);
  await finishCodeMode();

  console.log(paint(1, "\nfinal state: orch status --run " + RUN + "\n"));
  process.stdout.write(await cli("orch", ["status", "--run", RUN], { json: false }));
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (!done) throw new Error(`the run did not finish within ${DEADLINE_MS / 1000} s`);
  console.log(paint(1, `\nthe run is done (${seconds} s). Every step above was a separate orch/inbox process on one database file.`));
}

try {
  await main();
} catch (err) {
  console.error(paint(31, `demo failed: ${err.message}`));
  process.exitCode = 1;
} finally {
  if (KEEP) console.log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
