#!/usr/bin/env node
/**
 * Benchmark of the loop's two waits, through real processes of the built CLI:
 *
 *   ask -> wait:      from a worker's `inbox ask` (the question's commit time)
 *                     to the leader's already-running `orch wait --for task_blocked`
 *                     printing its result;
 *   answer -> ask:    from the leader's `orch answer` (the answer's commit time)
 *                     to the worker's already-running `inbox ask --wait` printing it.
 *
 * Reports median and p95 in milliseconds; the goal is p95 < 300 ms for each.
 * Usage: node scripts/bench_loop.mjs [--trials N] [--json]
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLE = path.join(ROOT, "dist", "orch.mjs");
export const GOAL_P95_MS = 300;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts the CLI; resolves with the time its first complete JSON line arrived, and the JSON. */
function start(bundle, db, entry, args, timeoutMs = 60_000) {
  const child = spawn(process.execPath, [bundle, "--db", db, "--json", ...args], {
    env: { ...process.env, ORCH_ENTRY: entry, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`${entry} ${args[0]} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    let settled = false;
    child.stdout.on("data", (d) => {
      out += d;
      if (settled || !out.includes("\n")) return;
      settled = true;
      const at = Date.now();
      clearTimeout(timer);
      const json = JSON.parse(out.slice(0, out.indexOf("\n")));
      if (!json.ok) reject(new Error(`${entry} ${args.join(" ")} failed: ${JSON.stringify(json.error)}`));
      else resolve({ at, json });
    });
    child.on("close", (code) => {
      if (settled) return;
      clearTimeout(timer);
      reject(new Error(`${entry} ${args[0]} exited ${code} without output: ${err}`));
    });
  });
}


function summarise(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
  return { n: s.length, median_ms: at(0.5), p95_ms: at(0.95), min_ms: s[0], max_ms: s[s.length - 1] };
}

/**
 * Runs the benchmark; returns medians and p95s. `settleMs` is how long to let a
 * waiting process start polling before the write it waits for; `bundle` and
 * `tmp` default to dist/orch.mjs and the system temp directory (npm run bench
 * passes its own).
 */
export async function benchLoop({ trials = 20, settleMs = 1000, log = () => {}, bundle = BUNDLE, tmp = tmpdir() } = {}) {
  if (!existsSync(bundle)) {
    const { buildBundle } = await import("./build.mjs");
    await buildBundle(bundle);
  }
  const orch = (db, ...args) => start(bundle, db, "orch", args).then((r) => r.json);
  const inbox = (db, ...args) => start(bundle, db, "inbox", args).then((r) => r.json);
  const dir = mkdtempSync(path.join(tmp, "orch-bench-loop-"));
  const db = path.join(dir, "coord.db");
  const askToWait = [];
  const answerToAsk = [];
  try {
    await inbox(db, "init");
    await orch(db, "run", "init", "--run", "bench", "--goal", "measure the loop's waits");
    for (let i = 1; i <= trials; i++) {
      const task = `T${i}`;
      await orch(db, "task", "add", "--run", "bench", "--task", task, "--title", `trial ${i}`, "--default-to", "w");
      await orch(db, "dispatch", "--run", "bench", "--task", task, "--execution-mode", "analysis");
      const token = (await inbox(db, "claim", "--as", "w")).lease.token;
      const last = (await orch(db, "run", "show", "--run", "bench")).last_event_id;

      // the leader waits for the question before it is asked
      const leader = start(bundle, db, "orch", ["wait", "--run", "bench", "--for", "task_blocked", "--after-event", String(last), "--timeout-seconds", "60"]);
      await sleep(settleMs);
      const worker = start(bundle, db, "inbox", ["ask", "--token", token, "--body", `question ${i}`, "--wait", "--timeout-seconds", "60"]);
      const woke = await leader;
      const blocked = woke.json.events[0];
      askToWait.push(woke.at - Date.parse(blocked.created_at));

      // the worker has been waiting in `ask --wait` since it asked
      await sleep(settleMs / 2);
      const answered = await orch(db, "answer", "--run", "bench", "--task", task, "--body", `answer ${i}`);
      const heard = await worker;
      if (heard.json.answer?.id !== answered.answer.id) throw new Error(`trial ${i}: ask --wait returned ${JSON.stringify(heard.json.answer)}`);
      answerToAsk.push(heard.at - Date.parse(answered.answer.created_at));
      await inbox(db, "done", "--token", token, "--body", "ok");
      log(`trial ${i}: ask->wait ${askToWait[i - 1]} ms, answer->ask ${answerToAsk[i - 1]} ms`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const a = summarise(askToWait);
  const b = summarise(answerToAsk);
  return {
    name: "loop",
    trials,
    goal_p95_ms: GOAL_P95_MS,
    ask_to_leader_wait: a,
    answer_to_worker_ask_wait: b,
    meets_goal: a.p95_ms < GOAL_P95_MS && b.p95_ms < GOAL_P95_MS,
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const i = args.indexOf("--trials");
  const trials = i >= 0 ? Number(args[i + 1]) : 20;
  const json = args.includes("--json");
  const r = await benchLoop({ trials, log: json ? () => {} : (line) => console.error(line) });
  if (json) console.log(JSON.stringify(r));
  else {
    const row = (label, s) => `${label.padEnd(34)} median ${String(s.median_ms).padStart(4)} ms   p95 ${String(s.p95_ms).padStart(4)} ms   (min ${s.min_ms}, max ${s.max_ms}, n ${s.n})`;
    console.log(row("worker ask -> leader wait returns", r.ask_to_leader_wait));
    console.log(row("leader answer -> ask --wait returns", r.answer_to_worker_ask_wait));
    console.log(`goal: p95 < ${GOAL_P95_MS} ms each: ${r.meets_goal ? "met" : "NOT met"}`);
  }
}
