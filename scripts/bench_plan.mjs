#!/usr/bin/env node
/**
 * Benchmark of the leader's planning surface through the built bundle
 * (dist/orch.mjs), in real processes as an agent runs them:
 *
 *   ready, status        latency (spawn to exit) and the process's CPU time
 *                        (steadier on a busy machine) on a 1,000-task run
 *                        with a random acyclic graph, a third of it done;
 *   wait wake-up         from the writer process's exit to the blocked
 *                        `orch wait`'s exit, on a small run and on the
 *                        1,000-task run (goal: p95 < 250 ms);
 *   wait idle CPU        user+system CPU of a blocked `orch wait` over an idle
 *                        stretch (/proc/<pid>/stat, Linux), scaled to a minute
 *                        (goal: < 1 CPU-second per idle minute).
 *
 * Usage: node scripts/bench_plan.mjs [--reps N] [--trials N] [--idle-seconds S] [--build] [--json]
 * Library: `import { benchPlan, formatRows } from "./bench_plan.mjs"`; benchPlan() returns rows
 * { metric, n, median, p95, unit, goal, pass } (median/p95 null where one value is measured).
 */
import { childrenCpuMs, procCpuMs } from "./_proc_cpu.mjs";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLE = path.join(ROOT, "dist", "orch.mjs");
export const WAKE_GOAL_P95_MS = 250;
export const IDLE_CPU_GOAL_MS_PER_MIN = 1000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const env = (entry) => ({ ...process.env, ORCH_ENTRY: entry, NO_COLOR: "1" });

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}
function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, median: quantile(s, 0.5), p95: quantile(s, 0.95) };
}

/** Runs the CLI to completion; throws on failure. */
function cli(db, args, entry = "orch") {
  const r = spawnSync(process.execPath, [BUNDLE, "--db", db, "--json", ...args], { env: env(entry), encoding: "utf8" });
  const json = (() => {
    try {
      return JSON.parse(r.stdout);
    } catch {
      return undefined;
    }
  })();
  if (r.status !== 0 || !json?.ok) throw new Error(`${entry} ${args.join(" ")} failed (exit ${r.status}): ${r.stdout}${r.stderr}`);
  return json;
}

/** Builds the 1,000-task database in one process through the library (bundled on the fly: Node 20 cannot import .ts). */
async function fixtureModule() {
  const { bundleLibForNode } = await import("./_bundle_lib.mjs");
  // inside the repo, so the bundled lib/_wasm.ts finds sql.js's WASM file from there
  const dir = path.join(ROOT, "dist", ".bench");
  mkdirSync(dir, { recursive: true });
  const outfile = path.join(dir, "plan_fixture.mjs");
  const contents = `
    import { initDatabase, writeTransaction } from "./lib/storage.ts";
    import { initRun } from "./lib/runs.ts";
    import { addTask, setTaskStatus } from "./lib/tasks.ts";
    import { addDeps } from "./lib/deps.ts";
    function prng(seed) {
      let a = seed >>> 0;
      return () => { a = (a + 0x6d2b79f5) >>> 0; let x = a; x = Math.imul(x ^ (x >>> 15), x | 1);
        x ^= x + Math.imul(x ^ (x >>> 7), x | 61); return ((x ^ (x >>> 14)) >>> 0) / 4294967296; };
    }
    /** n tasks, each depending on 0-3 tasks earlier in a random topological order; about a third done. */
    export async function makeRun(db, run, n, seed = 7) {
      const rand = prng(seed);
      const ids = Array.from({ length: n }, (_, i) => "t" + String(i).padStart(4, "0"));
      const topo = [...ids];
      for (let i = topo.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [topo[i], topo[j]] = [topo[j], topo[i]]; }
      await initDatabase(db);
      await writeTransaction(db, (tx) => {
        initRun(tx, { run, goal: "benchmark run of " + n + " tasks" });
        for (const id of ids) addTask(tx, { run, task: id, title: "task " + id, default_to: "w" + (id.charCodeAt(4) % 4) });
        for (let r = topo.length - 1; r > 0; r--) {
          const k = Math.floor(rand() * 4), deps = new Set();
          for (let i = 0; i < k; i++) deps.add(topo[Math.floor(rand() * r)]);
          if (deps.size) addDeps(tx, run, topo[r], [...deps]);
        }
        for (const id of topo.slice(0, Math.floor(n / 3))) setTaskStatus(tx, run, id, "done");
      });
    }`;
  await bundleLibForNode({ stdin: { contents, sourcefile: "plan_fixture.ts" }, outfile });
  return await import(pathToFileURL(outfile).href);
}


/** Wall time (spawn to exit) and CPU time of one CLI call; CPU is steadier than wall time on a busy machine. */
function timed(db, args) {
  const c0 = childrenCpuMs();
  const t0 = performance.now();
  cli(db, args);
  return { wall: performance.now() - t0, cpu: childrenCpuMs() - c0 };
}

function latencyRows(metric, samples) {
  return [
    { metric: `${metric}, wall`, ...stats(samples.map((x) => x.wall)), unit: "ms", goal: null, pass: null },
    { metric: `${metric}, CPU`, ...stats(samples.map((x) => x.cpu)), unit: "ms", goal: null, pass: null },
  ];
}

/** Resolves with the time the process exited (and its stdout). */
function exited(child) {
  let out = "";
  child.stdout?.on("data", (d) => (out += d));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ at: performance.now(), code, out: () => out })));
}

/**
 * One wake-up trial: `wait` blocks on the run; once it is idle, a writer
 * process adds a task; the latency is the wait's exit minus the writer's exit.
 */
async function wakeTrial(db, run, i, settleMs) {
  const last = cli(db, ["run", "show", "--run", run]).last_event_id;
  const waiter = spawn(process.execPath, [BUNDLE, "--db", db, "--json", "wait", "--run", run, "--for", "task_added", "--after-event", String(last), "--timeout-seconds", "60"], { env: env("orch"), stdio: ["ignore", "pipe", "pipe"] });
  const waitDone = exited(waiter);
  await sleep(settleMs); // let it start and reach its idle poll
  const writer = spawn(process.execPath, [BUNDLE, "--db", db, "--json", "task", "add", "--run", run, "--task", `wake${i}-${Date.now()}`, "--title", "wake-up probe"], { env: env("orch"), stdio: ["ignore", "pipe", "pipe"] });
  const [w, r] = await Promise.all([exited(writer), waitDone]);
  if (w.code !== 0 || r.code !== 0) throw new Error(`wake trial failed: writer ${w.code}, wait ${r.code}: ${r.out()}`);
  const json = JSON.parse(r.out());
  if (json.timed_out || json.events.length !== 1) throw new Error(`wait did not return the probe: ${r.out()}`);
  return r.at - w.at;
}


/** CPU a blocked `wait` uses while nothing happens, per minute; null where /proc is missing. */
async function idleCpu(db, run, seconds) {
  if (!existsSync("/proc/self/stat")) return null;
  const waiter = spawn(process.execPath, [BUNDLE, "--db", db, "--json", "wait", "--run", run, "--for", "task_done", "--timeout-seconds", String(seconds + 30)], { env: env("orch"), stdio: ["ignore", "pipe", "pipe"] });
  const done = exited(waiter);
  await sleep(1500); // start-up (module load, WASM compile, first read) is not idle time
  const c0 = procCpuMs(waiter.pid);
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const c1 = procCpuMs(waiter.pid);
  const elapsed = (performance.now() - t0) / 1000;
  waiter.kill();
  await done;
  return { cpuMs: c1 - c0, seconds: elapsed, perMinuteMs: ((c1 - c0) * 60) / elapsed };
}

/**
 * Measures and returns the rows. Options: reps (ready/status samples, default
 * 15), trials (wake-ups per database, default 20), idleSeconds (default 20),
 * settleMs (how long each wait blocks before the write, default 2500: past
 * wait's 2 s fast-poll phase, so the slower idle polling is what is measured),
 * log (progress lines, default stderr).
 */
export async function benchPlan({ reps = 15, trials = 20, idleSeconds = 20, settleMs = 2500, log = (s) => process.stderr.write(`${s}\n`) } = {}) {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first (or pass --build)`);
  const dir = mkdtempSync(path.join(tmpdir(), "orch-bench-plan-"));
  try {
    const big = path.join(dir, "big.db");
    const small = path.join(dir, "small.db");
    log("building the 1,000-task run ...");
    const fixture = await fixtureModule();
    await fixture.makeRun(big, "big", 1000);
    cli(small, ["init"], "inbox");
    cli(small, ["run", "init", "--run", "small", "--goal", "wake-up probes"]);

    const rows = [];
    for (const cmd of ["ready", "status"]) {
      log(`${cmd} x${reps} ...`);
      timed(big, [cmd, "--run", "big"]); // warm the file cache
      const samples = Array.from({ length: reps }, () => timed(big, [cmd, "--run", "big"]));
      rows.push(...latencyRows(`${cmd} (1,000-task run)`, samples));
    }
    for (const [label, db, run] of [["small run", small, "small"], ["1,000-task run", big, "big"]]) {
      log(`wait wake-up on the ${label} x${trials} ...`);
      const samples = [];
      for (let i = 0; i < trials; i++) samples.push(await wakeTrial(db, run, i, settleMs));
      const s = stats(samples);
      rows.push({ metric: `wait wake-up after the writer exits (${label})`, ...s, unit: "ms", goal: `p95 < ${WAKE_GOAL_P95_MS} ms`, pass: s.p95 < WAKE_GOAL_P95_MS });
    }
    log(`wait idle CPU over ${idleSeconds} s ...`);
    const idle = await idleCpu(small, "small", idleSeconds);
    rows.push({
      metric: `wait CPU per idle minute (measured over ${idleSeconds} s)`,
      n: idle ? 1 : 0,
      median: idle ? idle.perMinuteMs : NaN,
      p95: null,
      unit: "ms CPU/min",
      goal: `< ${IDLE_CPU_GOAL_MS_PER_MIN} ms`,
      pass: idle ? idle.perMinuteMs < IDLE_CPU_GOAL_MS_PER_MIN : null,
    });
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A small markdown table of the rows. */
export function formatRows(rows) {
  const f = (v) => (v === null || v === undefined ? "-" : Number.isNaN(v) ? "n/a" : v.toFixed(v < 10 ? 1 : 0));
  const lines = ["| metric | n | median | p95 | unit | goal | met |", "|---|---:|---:|---:|---|---|---|"];
  for (const r of rows) lines.push(`| ${r.metric} | ${r.n} | ${f(r.median)} | ${f(r.p95)} | ${r.unit} | ${r.goal ?? "-"} | ${r.pass === null ? "-" : r.pass ? "yes" : "**no**"} |`);
  return lines.join("\n");
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const opt = (name, fallback) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? Number(argv[i + 1]) : fallback;
  };
  if (argv.includes("--build") || !existsSync(BUNDLE)) {
    const { buildBundle } = await import("./build.mjs");
    mkdirSync(path.dirname(BUNDLE), { recursive: true });
    await buildBundle();
  }
  const rows = await benchPlan({ reps: opt("reps", 15), trials: opt("trials", 20), idleSeconds: opt("idle-seconds", 20) });
  console.log(argv.includes("--json") ? JSON.stringify(rows, null, 2) : formatRows(rows));
}
