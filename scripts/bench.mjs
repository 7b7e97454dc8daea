/**
 * `npm run bench`: builds the bundle and the linux-x64 binary, makes benchmark
 * databases, measures every runtime against its floor in the same run, prints
 * the results and writes them into BENCHMARKS.md (between the bench markers;
 * the notes around them are kept).
 *
 * Options:
 *   --reps N          samples per point (default 10; one warm-up run is extra)
 *   --only a,b        sections: floors, commands, contention, wait, memory
 *   --runtimes a,b    node, deno, binary (default all)
 *   --dbs a,b         small, large, xl (default all)
 *   --skip-build      use the dist/ artefacts as they are
 *   --no-write        print only; leave BENCHMARKS.md alone
 *   --no-compare      leave out the binary-on-sql.js comparison column
 *
 * Latency is wall-clock from spawn to exit, with stdout piped as an agent
 * reads it. "cpu" is the child's user+system time (from /proc/self/stat after
 * reaping), which is steadier than wall time on a busy machine.
 */
import { childrenCpuMs, procCpuMs } from "./_proc_cpu.mjs";
import { spawn, spawnSync, execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { bundleLibForNode } from "./_bundle_lib.mjs";
import { buildBundle } from "./build.mjs";
import { compile } from "./compile.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLE = path.join(root, "dist", "orch.mjs");
const BINARY = path.join(root, "dist", "bin", "orch-linux-x64");
const DENO = path.join(root, "node_modules", ".bin", "deno");
const BUN = path.join(root, "node_modules", ".bin", "bun");
const MOD = path.join(root, "mod.ts");
const OUT = path.join(root, "BENCHMARKS.md");
const START = "<!-- bench:start (written by `npm run bench`; edit outside these markers) -->";
const END = "<!-- bench:end -->";

// ---- options ---------------------------------------------------------------

const argv = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};
const flag = (name) => argv.includes(`--${name}`);
const REPS = Number(opt("reps", "10"));
const ONLY = new Set((opt("only", "floors,commands,contention,wait,memory")).split(","));
const canRunBinary = process.platform === "linux" && process.arch === "x64";
const RUNTIMES = opt("runtimes", "node,deno,binary").split(",").filter((r) => r !== "binary" || canRunBinary);
const DBS = opt("dbs", "small,large,xl").split(",");

const SPECS = {
  small: { historyRuns: 0, tasks: 50, messages: 0, label: "small (50 tasks)" },
  large: { historyRuns: 0, tasks: 1000, messages: 20_000, label: "large (1,000 tasks, 20,000 messages)" },
  xl: { historyRuns: 4, tasks: 1000, messages: 100_000, label: "very large (5,000 tasks, 100,000 messages)" },
};

// ---- measuring -------------------------------------------------------------



const ENV = { ...process.env, NO_COLOR: "1" };

/** Runs a command once; returns wall ms and child cpu ms. Throws if it fails. */
function runOnce(cmd, args, env = {}) {
  const cpu0 = childrenCpuMs();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env: { ...ENV, ...env }, encoding: "utf8", maxBuffer: 512 * 1024 * 1024, stdio: ["ignore", "pipe", "pipe"] });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = childrenCpuMs() - cpu0;
  if (r.status !== 0) throw new Error(`${path.basename(cmd)} ${args.join(" ")} exited ${r.status ?? r.signal}\n${r.stdout?.slice(0, 2000)}\n${r.stderr?.slice(0, 2000)}`);
  return { wall, cpu, stdout: r.stdout, stderr: r.stderr };
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function summarise(walls, cpus = []) {
  const s = [...walls].sort((a, b) => a - b);
  const c = cpus.filter((x) => Number.isFinite(x));
  return { n: s.length, median: quantile(s, 0.5), p95: quantile(s, 0.95), min: s[0], cpu: c.length ? c.reduce((a, b) => a + b, 0) / c.length : NaN };
}

/** Samples a command: one warm-up, then REPS timed runs; `before` runs untimed before each. */
function sample(cmd, args, { env = {}, before, reps = REPS } = {}) {
  before?.();
  runOnce(cmd, args, env);
  const walls = [];
  const cpus = [];
  for (let i = 0; i < reps; i++) {
    before?.();
    const r = runOnce(cmd, args, env);
    walls.push(r.wall);
    cpus.push(r.cpu);
  }
  return summarise(walls, cpus);
}

const ms = (x) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : "n/a");
const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const log = (s = "") => process.stdout.write(`${s}\n`);

// ---- the artefacts ---------------------------------------------------------

function runtimeCommand(runtime, entry) {
  const env = { ORCH_ENTRY: entry };
  switch (runtime) {
    case "node":
      return { cmd: process.execPath, pre: [BUNDLE], env };
    case "deno":
      return { cmd: DENO, pre: ["run", "-A", "--quiet", MOD], env };
    case "binary":
      return { cmd: BINARY, pre: [], env };
    case "binary-sqljs": // the same binary on sql.js, to measure what Bun's SQLite is worth
      return { cmd: BINARY, pre: [], env: { ...env, ORCH_SQLITE: "sqljs" } };
  }
  throw new Error(`unknown runtime ${runtime}`);
}

const RUNTIME_LABEL = { node: "Node bundle", deno: "Deno from source", binary: "linux-x64 binary", "binary-sqljs": "binary on sql.js (ORCH_SQLITE=sqljs, for comparison)" };
/** The command tables also show the binary on sql.js (not a goal, a comparison); --no-compare drops it. */
const COMMAND_RUNTIMES = RUNTIMES.includes("binary") && !flag("no-compare") ? [...RUNTIMES, "binary-sqljs"] : RUNTIMES;

async function buildAll(tmp) {
  if (!flag("skip-build")) {
    log("building dist/orch.mjs and dist/bin/orch-linux-x64 ...");
    await buildBundle();
    if (canRunBinary) await compile(["linux-x64"]);
  }
  // the hello-world floor: the same compiler, an empty program
  const hello = path.join(tmp, "hello.js");
  writeFileSync(hello, 'console.log("hello");\n');
  const helloBin = path.join(tmp, "hello-bin");
  if (canRunBinary) execFileSync(BUN, ["build", "--compile", "--minify", hello, "--outfile", helloBin], { stdio: "ignore" });
  writeFileSync(path.join(tmp, "empty.ts"), "");
  return { helloBin, empty: path.join(tmp, "empty.ts") };
}

/**
 * Builds a database in a child process. Building the very large one grows the
 * WASM memory of whoever builds it to hundreds of MB, and WASM memory never
 * shrinks: every later spawn from a process that big pays for fork()'s page
 * tables (measured: +10 ms on a hello-world), skewing floors and commands alike.
 */
function makeFixtureInChild(moduleFile, dbPath, spec) {
  const script = `import(${JSON.stringify(pathToFileURL(moduleFile).href)}).then((m) => m.makeFixture(${JSON.stringify(dbPath)}, ${JSON.stringify(spec)})).then((f) => process.stdout.write(JSON.stringify(f)));`;
  return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }));
}

/** Bundles scripts/bench_fixtures.ts (Node 20 cannot import .ts) and imports it. */
async function fixturesModule() {
  const dir = path.join(root, "dist", ".bench");
  mkdirSync(dir, { recursive: true });
  const outfile = path.join(dir, "bench_fixtures.mjs");
  await bundleLibForNode({ entry: path.join(root, "scripts", "bench_fixtures.ts"), outfile });
  // imported lazily: only the fallback wake-up measurements write in-process (on the small database)
  let mod;
  return {
    file: outfile,
    writeProgress: async (...args) => (mod ??= await import(pathToFileURL(outfile).href)).writeProgress(...args),
    writeAnswer: async (...args) => (mod ??= await import(pathToFileURL(outfile).href)).writeAnswer(...args),
  };
}

// ---- machine -----------------------------------------------------------------

function firstLine(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n")[0].trim();
  } catch {
    return "n/a";
  }
}

function machine() {
  let osName = `${os.type()} ${os.release()}`;
  try {
    const rel = readFileSync("/etc/os-release", "utf8").match(/^PRETTY_NAME="?([^"\n]*)"?/m);
    if (rel) osName = `${rel[1]} (kernel ${os.release()})`;
  } catch {
    // not Linux: os.type() is enough
  }
  const sqliteOf = (cmd, args) => {
    try {
      const v = JSON.parse(execFileSync(cmd, [...args, "--version", "--json"], { encoding: "utf8", env: { ...ENV, ORCH_ENTRY: "orch" } }));
      return `SQLite ${v.sqlite} (${v.sqlite_binding})`;
    } catch {
      return "n/a";
    }
  };
  const engines = [
    `Node bundle: ${sqliteOf(process.execPath, [BUNDLE])}`,
    `Deno: ${sqliteOf(DENO, ["run", "-A", "--quiet", MOD])}`,
    ...(canRunBinary ? [`binary: ${sqliteOf(BINARY, [])}`] : []),
  ].join("; ");
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    cpu: `${os.cpus()[0]?.model ?? "unknown"} × ${os.cpus().length} cores`,
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    os: osName,
    node: process.version,
    deno: firstLine(DENO, ["--version"]),
    bun: firstLine(BUN, ["--version"]),
    sqlite3: firstLine("sqlite3", ["--version"]).split(" ").slice(0, 2).join(" "),
    engines,
    load: os.loadavg().map((x) => x.toFixed(2)).join(", "),
    // on a shared Linux machine the bench can run in its own scheduling group with a higher weight (see BENCHMARKS.md)
    sched: (() => {
      try {
        return readFileSync("/proc/self/autogroup", "utf8").trim().replace(/^\/autogroup-\d+ /, "autogroup ");
      } catch {
        return "n/a";
      }
    })(),
  };
}

// ---- the native floor: the sqlite3 shell doing each command's SQL -----------

function sqlFor(command, fx) {
  const run = fx.run;
  const w = fx.running[0];
  const task = fx.ready[0];
  const now = Date.now();
  switch (command) {
    case "ready":
      return `SELECT t.* FROM tasks t WHERE t.run_id = '${run}' AND t.status = 'pending' AND NOT EXISTS (SELECT 1 FROM deps d JOIN tasks u ON u.run_id = d.run_id AND u.id = d.depends_on WHERE d.run_id = t.run_id AND d.task_id = t.id AND u.status != 'done') ORDER BY t.seq;`;
    case "status":
      return `SELECT t.*, a.*, l.*, (SELECT m.body FROM messages m WHERE m.thread_id = a.thread_id ORDER BY m.id DESC LIMIT 1) AS latest,
        (SELECT group_concat(d.depends_on) FROM deps d WHERE d.run_id = t.run_id AND d.task_id = t.id) AS deps
        FROM tasks t LEFT JOIN attempts a ON a.run_id = t.run_id AND a.task_id = t.id AND a.number = (SELECT max(number) FROM attempts x WHERE x.run_id = t.run_id AND x.task_id = t.id)
        LEFT JOIN threads th ON th.id = a.thread_id LEFT JOIN leases l ON l.token = th.lease_token
        WHERE t.run_id = '${run}' ORDER BY t.seq; SELECT status, count(*) FROM tasks WHERE run_id = '${run}' GROUP BY status; SELECT max(id) FROM events WHERE run_id = '${run}';`;
    case "progress":
      return `BEGIN IMMEDIATE; SELECT * FROM leases WHERE token = '${w.token}';
        UPDATE leases SET expires_at = ${now + 600_000} WHERE token = '${w.token}';
        INSERT INTO messages (thread_id, kind, sender, recipient, body, created_at) VALUES (${w.thread}, 'progress', '${w.worker}', 'leader', 'Parsed the logs; three failures share a timeout in the retry loop.', ${now});
        UPDATE threads SET updated_at = ${now} WHERE id = ${w.thread};
        INSERT INTO events (run_id, type, task_id, thread_id, message_id, actor, data_json, created_at) VALUES ('${run}', 'task_progress', '${w.task}', ${w.thread}, last_insert_rowid(), '${w.worker}', '{}', ${now});
        SELECT count(*), max(id) FROM messages WHERE thread_id = ${w.thread}; COMMIT;`;
    case "dispatch":
      return `BEGIN IMMEDIATE; SELECT * FROM tasks WHERE run_id = '${run}' AND id = '${task}';
        INSERT INTO threads (run_id, task_id, subject, assigned_to, created_by, status, created_at, updated_at) VALUES ('${run}', '${task}', 'subject', 'worker-1', 'leader', 'open', ${now}, ${now});
        INSERT INTO attempts (run_id, task_id, number, worker, mode, status, thread_id, created_at) VALUES ('${run}', '${task}', 1, 'worker-1', 'analysis', 'dispatched', last_insert_rowid(), ${now});
        UPDATE threads SET attempt_id = last_insert_rowid() WHERE id = (SELECT max(id) FROM threads);
        INSERT INTO messages (thread_id, kind, sender, recipient, body, created_at) VALUES ((SELECT max(id) FROM threads), 'assignment', 'leader', 'worker-1', 'Do the task.', ${now});
        UPDATE tasks SET status = 'dispatched', updated_at = ${now} WHERE run_id = '${run}' AND id = '${task}';
        INSERT INTO events (run_id, type, task_id, actor, data_json, created_at) VALUES ('${run}', 'task_dispatched', '${task}', 'leader', '{}', ${now}); COMMIT;`;
  }
  throw new Error(command);
}

// ---- sections ----------------------------------------------------------------

const COMMANDS = [
  { name: "ready", entry: "orch", write: false, args: (fx) => ["ready", "--run", fx.run] },
  { name: "status", entry: "orch", write: false, args: (fx) => ["status", "--run", fx.run] },
  { name: "progress", entry: "inbox", write: true, args: (fx) => ["progress", "--token", fx.running[0].token, "--body", "Parsed the logs; three failures share a timeout in the retry loop."] },
  { name: "dispatch", entry: "orch", write: true, args: (fx) => ["dispatch", "--run", fx.run, "--task", fx.ready[0], "--execution-mode", "analysis"] },
];

function withWorkCopy(fx, tmp) {
  const work = path.join(tmp, `work-${path.basename(fx.path)}`);
  const restore = () => {
    copyFileSync(fx.path, work);
    rmSync(`${work}.lock`, { force: true });
  };
  restore();
  return { work, restore };
}

function floors(fixtures, tools, tmp) {
  const out = {};
  log("\nruntime floors");
  out.node = sample(process.execPath, ["-e", "0"]);
  log(`  node -e 0                  ${ms(out.node.median)} ms`);
  out.deno = sample(DENO, ["run", "-A", "--quiet", tools.empty]);
  log(`  deno run (empty file)      ${ms(out.deno.median)} ms`);
  if (canRunBinary) {
    out.hello = sample(tools.helloBin, []);
    log(`  bun hello-world binary     ${ms(out.hello.median)} ms`);
  }
  out.sqlite = {};
  for (const [db, fx] of Object.entries(fixtures)) {
    out.sqlite[db] = {};
    for (const c of COMMANDS) {
      const { work, restore } = withWorkCopy(fx, tmp);
      const sql = sqlFor(c.name, fx);
      out.sqlite[db][c.name] = sample("sqlite3", ["-bail", work, sql], { before: c.write ? restore : undefined });
      log(`  sqlite3 ${c.name.padEnd(9)} ${db.padEnd(6)}   ${ms(out.sqlite[db][c.name].median)} ms`);
    }
  }
  return out;
}

function commands(fixtures, tmp) {
  const out = {};
  log("\nper-command latency (median / p95 ms)");
  for (const [db, fx] of Object.entries(fixtures)) {
    out[db] = {};
    for (const runtime of COMMAND_RUNTIMES) {
      out[db][runtime] = {};
      for (const c of COMMANDS) {
        const { cmd, pre, env } = runtimeCommand(runtime, c.entry);
        const { work, restore } = withWorkCopy(fx, tmp);
        const s = sample(cmd, [...pre, "--db", work, "--json", ...c.args(fx)], { env, before: c.write ? restore : undefined });
        out[db][runtime][c.name] = s;
        log(`  ${db.padEnd(6)} ${runtime.padEnd(7)} ${c.name.padEnd(9)} ${ms(s.median).padStart(6)} / ${ms(s.p95).padStart(6)}   cpu ${ms(s.cpu)}`);
      }
    }
  }
  return out;
}

/** Where a write's time goes (ORCH_DEBUG_TIMING phases of `inbox progress`), per database size. */
function writePhases(fixtures, tmp) {
  const runtime = RUNTIMES.includes("binary") ? "binary" : "node";
  const { cmd, pre, env } = runtimeCommand(runtime, "inbox");
  const out = { runtime, dbs: {} };
  log(`\nwrite phases (${RUNTIME_LABEL[runtime]}, inbox progress; median ms)`);
  for (const [db, fx] of Object.entries(fixtures)) {
    const { work, restore } = withWorkCopy(fx, tmp);
    const rows = [];
    for (let i = 0; i < Math.max(5, REPS); i++) {
      restore();
      const r = runOnce(cmd, [...pre, "--db", work, "--json", ...COMMANDS[2].args(fx)], { ...env, ORCH_DEBUG_TIMING: "1" });
      const line = r.stderr.split("\n").find((l) => l.startsWith("orch-timing "));
      if (line) rows.push({ ...JSON.parse(line.slice("orch-timing ".length)), wall_ms: r.wall });
    }
    const med = {};
    for (const k of ["wall_ms", "total_ms", "lock_wait_ms", "load_ms", "apply_ms", "export_ms", "flush_ms"]) med[k] = quantile(rows.map((x) => x[k] ?? 0).sort((a, b) => a - b), 0.5);
    med.start_ms = med.total_ms - ["lock_wait_ms", "load_ms", "apply_ms", "export_ms", "flush_ms"].reduce((a, k) => a + med[k], 0);
    out.dbs[db] = med;
    log(`  ${db.padEnd(6)} wall ${ms(med.wall_ms)}: start ${ms(med.start_ms)}, lock ${ms(med.lock_wait_ms)}, engine+load ${ms(med.load_ms)}, apply ${ms(med.apply_ms)}, export ${ms(med.export_ms)}, write+fsync+rename ${ms(med.flush_ms)}`);
  }
  return out;
}

/** Runs one CLI process asynchronously; resolves with its exit code, stderr and timing line. */
function runAsync(cmd, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...ENV, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => {
      const line = stderr.split("\n").reverse().find((l) => l.startsWith("orch-timing "));
      resolve({ code, stdout, stderr, timing: line ? JSON.parse(line.slice("orch-timing ".length)) : undefined, at: performance.now() });
    });
  });
}

async function contention(fixtures, tmp) {
  const fx = fixtures.small;
  const runtime = RUNTIMES.includes("binary") ? "binary" : "node";
  const { cmd, pre, env } = runtimeCommand(runtime, "inbox");
  const out = { runtime, levels: [] };
  log(`\ncontention (${RUNTIME_LABEL[runtime]}, small database, 25 progress writes per worker)`);
  for (const workers of [2, 4, 8, 16]) {
    const { work } = withWorkCopy(fx, tmp);
    const before = Number(execFileSync("sqlite3", [work, "SELECT count(*) FROM messages"], { encoding: "utf8" }));
    const t0 = performance.now();
    const results = await Promise.all(
      fx.running.slice(0, workers).map(async (w, i) => {
        const rs = [];
        for (let n = 0; n < 25; n++) {
          rs.push(await runAsync(cmd, [...pre, "--db", work, "--json", "--lock-timeout-ms", "60000", "progress", "--token", w.token, "--body", `worker ${i} progress ${n}: still going`], { ...env, ORCH_DEBUG_TIMING: "1" }));
        }
        return rs;
      }),
    );
    const wall = performance.now() - t0;
    const flat = results.flat();
    const failed = flat.filter((r) => r.code !== 0);
    const after = Number(execFileSync("sqlite3", [work, "SELECT count(*) FROM messages"], { encoding: "utf8" }));
    const bodies = new Set(execFileSync("sqlite3", [work, "SELECT body FROM messages WHERE kind = 'progress' AND body LIKE 'worker %'"], { encoding: "utf8" }).trim().split("\n").filter(Boolean));
    const expected = workers * 25;
    const lost = flat.filter((r, i) => r.code === 0 && !bodies.has(`worker ${Math.floor(i / 25)} progress ${i % 25}: still going`)).length;
    const waits = flat.map((r) => r.timing?.lock_wait_ms).filter((x) => typeof x === "number").sort((a, b) => a - b);
    const level = {
      workers,
      writes: expected,
      ok: flat.length - failed.length,
      failed: failed.length,
      lost,
      stored: after - before,
      wall,
      perSecond: ((flat.length - failed.length) / wall) * 1000,
      lockWaitMedian: quantile(waits, 0.5),
      lockWaitP95: quantile(waits, 0.95),
      timed: waits.length,
    };
    out.levels.push(level);
    log(`  ${String(workers).padStart(2)} workers: ${level.perSecond.toFixed(1)} writes/s, lock wait p95 ${ms(level.lockWaitP95)} ms, failed ${level.failed}, lost ${lost} (stored ${level.stored}/${expected})`);
    if (failed.length) log(`     first failure: ${failed[0].stdout.slice(0, 300)} ${failed[0].stderr.slice(0, 300)}`);
  }
  return out;
}

const sleep = (t) => new Promise((r) => setTimeout(r, t));

/**
 * wait / ask --wait wake-up latency and idle CPU. The loop's latencies come from
 * scripts/bench_loop.mjs and the plan's from scripts/bench_plan.mjs when they are
 * there; what they do not measure is measured here.
 */
async function waits(fixtures, fxmod, tmp, have = {}) {
  const out = { source: "bench.mjs", wake: {}, idle: {} };
  const fx = fixtures.small;
  const runtime = RUNTIMES.includes("binary") ? "binary" : "node";
  log(`\nwake-up latency (${RUNTIME_LABEL[runtime]}, small database; from the write's commit to the waiter's exit)`);
  const reps = Math.max(5, Math.min(REPS, 10));
  if (!have.wait) {
    const { work } = withWorkCopy(fx, tmp);
    const { cmd, pre, env } = runtimeCommand(runtime, "orch");
    const lat = [];
    for (let i = 0; i < reps; i++) {
      const last = Number(execFileSync("sqlite3", [work, `SELECT coalesce(max(id), 0) FROM events WHERE run_id = '${fx.run}'`], { encoding: "utf8" }));
      const child = runAsync(cmd, [...pre, "--db", work, "--json", "wait", "--run", fx.run, "--for", "task_progress", "--after-event", String(last), "--timeout-seconds", "30"], env);
      await sleep(2500); // past wait's fast-poll phase: the idle polling is what a leader meets
      await fxmod.writeProgress(work, fx.running[1].token, `wake ${i}`);
      const committed = performance.now();
      const r = await child;
      if (r.code !== 0) throw new Error(`wait failed: ${r.stdout} ${r.stderr}`);
      lat.push(r.at - committed);
    }
    out.wake.wait = summarise(lat);
    log(`  orch wait        median ${ms(out.wake.wait.median)} ms, p95 ${ms(out.wake.wait.p95)} ms`);
  }
  if (!have.ask) {
    const { work } = withWorkCopy(fx, tmp);
    const { cmd, pre, env } = runtimeCommand(runtime, "inbox");
    const w = fx.running[2];
    const lat = [];
    for (let i = 0; i < reps; i++) {
      const child = runAsync(cmd, [...pre, "--db", work, "--json", "ask", "--token", w.token, "--body", `question ${i}?`, "--wait", "--timeout-seconds", "30"], env);
      const deadline = Date.now() + 20_000;
      while (execFileSync("sqlite3", [work, `SELECT status FROM tasks WHERE run_id = '${fx.run}' AND id = '${w.task}'`], { encoding: "utf8" }).trim() !== "blocked") {
        if (Date.now() > deadline) throw new Error("the question never arrived");
        await sleep(20);
      }
      await sleep(300);
      await fxmod.writeAnswer(work, fx.run, w.task, `answer ${i}`);
      const committed = performance.now();
      const r = await child;
      if (r.code !== 0) throw new Error(`ask --wait failed: ${r.stdout} ${r.stderr}`);
      lat.push(r.at - committed);
    }
    out.wake.ask = summarise(lat);
    log(`  inbox ask --wait median ${ms(out.wake.ask.median)} ms, p95 ${ms(out.wake.ask.p95)} ms`);
  }
  if (have.idle) return out;
  // idle CPU: every runtime waits at once on a database nobody writes; CPU is read from /proc between 2 s and the end
  log("\nidle CPU of `orch wait` (no writes; scaled to one minute)");
  const seconds = 20;
  const { work } = withWorkCopy(fx, tmp);
  await Promise.all(RUNTIMES.map(async (rtName) => {
    const { cmd, pre, env } = runtimeCommand(rtName, "orch");
    const child = spawn(cmd, [...pre, "--db", work, "--json", "wait", "--run", fx.run, "--after-event", "999999999", "--timeout-seconds", String(seconds)], { env: { ...ENV, ...env }, stdio: "ignore" });
    const done = new Promise((r) => child.on("close", r));
    await sleep(2000);
    const c0 = procCpuMs(child.pid);
    const t0 = performance.now();
    await sleep((seconds - 3) * 1000);
    const c1 = procCpuMs(child.pid);
    const span = performance.now() - t0;
    await done;
    out.idle[rtName] = { cpuPerMinuteMs: ((c1 - c0) / span) * 60_000 };
    log(`  ${rtName.padEnd(7)} ${ms(out.idle[rtName].cpuPerMinuteMs)} ms CPU per idle minute`);
  }));
  return out;
}

function peakMemory(fixtures, tmp) {
  const fx = fixtures.xl ?? fixtures.large;
  const out = { db: fixtures.xl ? "xl" : "large", size: statSync(fx.path).size, runs: {} };
  const gnuTime = existsSync("/usr/bin/time");
  log(`\npeak memory on the ${out.db} database (${mb(out.size)} on disk)`);
  for (const runtime of RUNTIMES) {
    out.runs[runtime] = {};
    for (const c of COMMANDS.filter((x) => x.name === "status" || x.name === "progress")) {
      const { cmd, pre, env } = runtimeCommand(runtime, c.entry);
      const { work } = withWorkCopy(fx, tmp);
      const args = [...pre, "--db", work, "--json", ...c.args(fx)];
      let kb = NaN;
      if (gnuTime) {
        const r = spawnSync("/usr/bin/time", ["-f", "%M", cmd, ...args], { env: { ...ENV, ...env }, encoding: "utf8", maxBuffer: 512 * 1024 * 1024 });
        kb = Number(r.stderr.trim().split("\n").pop());
      } else {
        kb = vmHwmKb(cmd, args, env);
      }
      out.runs[runtime][c.name] = kb * 1024;
      log(`  ${runtime.padEnd(7)} ${c.name.padEnd(9)} ${mb(kb * 1024)}`);
    }
  }
  out.sizes = Object.fromEntries(Object.entries(fixtures).map(([k, f]) => [k, statSync(f.path).size]));
  return out;
}

/** Without GNU time: poll VmHWM (the resident high-water mark) until the process exits. */
function vmHwmKb(cmd, args, env) {
  const script = `const {spawn}=require("child_process");const fs=require("fs");const c=spawn(${JSON.stringify(cmd)},${JSON.stringify(args)},{stdio:"ignore",env:{...process.env,...${JSON.stringify(env)}}});let hwm=0;const t=setInterval(()=>{try{const m=fs.readFileSync("/proc/"+c.pid+"/status","utf8").match(/VmHWM:\\s+(\\d+)/);if(m)hwm=Math.max(hwm,+m[1])}catch{}},2);c.on("close",()=>{clearInterval(t);console.log(hwm)})`;
  return Number(execFileSync(process.execPath, ["-e", script], { env: { ...ENV, ...env }, encoding: "utf8" }).trim());
}

// ---- optional collaborators: scripts/bench_plan.mjs and scripts/bench_loop.mjs ---------

async function collaborator(file, fn, context) {
  const p = path.join(root, "scripts", file);
  if (!existsSync(p)) return undefined;
  const mod = await import(pathToFileURL(p).href);
  if (typeof mod[fn] !== "function") return undefined;
  log(`\n${file}: ${fn}()`);
  const result = await mod[fn](context);
  // bench_plan.mjs returns rows {metric, n, median, p95, unit, goal, pass} and formats them itself
  if (Array.isArray(result) && typeof mod.formatRows === "function") return { rows: result, markdown: mod.formatRows(result) };
  return result;
}

// ---- report ------------------------------------------------------------------

function goalRow(name, value, goal, pass, note = "") {
  return { name, value, goal, pass, note };
}

function evaluate(r) {
  const goals = [];
  const c = r.commands;
  const f = r.floors;
  if (c?.large?.binary) {
    const worst = COMMANDS.map((x) => [x.name, c.large.binary[x.name].median]).sort((a, b) => b[1] - a[1])[0];
    goals.push(goalRow("Compiled binary, any command, large DB", `${ms(worst[1])} ms (slowest: ${worst[0]})`, "≤ 60 ms", worst[1] <= 60));
  }
  for (const [runtime, floorKey, floorName] of [["node", "node", "`node -e 0`"], ["deno", "deno", "Deno's empty run"]]) {
    if (!c?.small?.[runtime] || !f?.[floorKey]) continue;
    const worst = COMMANDS.map((x) => [x.name, c.small[runtime][x.name].median]).sort((a, b) => b[1] - a[1])[0];
    const over = worst[1] - f[floorKey].median;
    goals.push(goalRow(`${RUNTIME_LABEL[runtime]} over ${floorName}, any command, small DB`, `+${ms(over)} ms (${worst[0]}: ${ms(worst[1])} vs ${ms(f[floorKey].median)})`, "≤ +80 ms", over <= 80));
    if (c.large?.[runtime]) {
      const worstL = COMMANDS.map((x) => [x.name, c.large[runtime][x.name].median]).sort((a, b) => b[1] - a[1])[0];
      const overL = worstL[1] - f[floorKey].median;
      goals.push(goalRow(`${RUNTIME_LABEL[runtime]} over ${floorName}, any command, large DB`, `+${ms(overL)} ms (${worstL[0]}: ${ms(worstL[1])})`, "≤ +80 ms", overL <= 80));
    }
  }
  if (c?.xl) {
    for (const runtime of RUNTIMES) {
      if (!c.xl[runtime]) continue;
      const worst = ["progress", "dispatch"].map((n) => [n, c.xl[runtime][n].median]).sort((a, b) => b[1] - a[1])[0];
      goals.push(goalRow(`Write on the very large DB (${RUNTIME_LABEL[runtime]})`, `${ms(worst[1])} ms (${worst[0]})`, "≤ 200 ms", worst[1] <= 200));
    }
  }
  if (r.memory) {
    for (const runtime of Object.keys(r.memory.runs)) {
      const worst = Math.max(...Object.values(r.memory.runs[runtime]));
      goals.push(goalRow(`Peak memory, one command on the ${r.memory.db === "xl" ? "very large" : "large"} DB (${RUNTIME_LABEL[runtime]})`, mb(worst), "≤ 200 MB", worst <= 200 * 1024 * 1024));
    }
  }
  const l16 = r.contention?.levels.find((l) => l.workers === 16);
  if (l16) {
    goals.push(goalRow("16-worker contention: lost writes", String(l16.lost + (l16.writes - l16.stored)), "0", l16.lost === 0 && l16.stored === l16.writes && l16.failed === 0, l16.failed ? `${l16.failed} failed` : ""));
    goals.push(goalRow("16-worker contention: throughput", `${l16.perSecond.toFixed(1)} writes/s`, "≥ 25 writes/s", l16.perSecond >= 25));
  }
  if (r.loop?.ask_to_leader_wait) {
    goals.push(goalRow("worker `ask` → leader's `wait` returns, p95", `${ms(r.loop.ask_to_leader_wait.p95_ms)} ms`, "< 250 ms", r.loop.ask_to_leader_wait.p95_ms < 250));
    goals.push(goalRow("leader `answer` → worker's `ask --wait` returns, p95", `${ms(r.loop.answer_to_worker_ask_wait.p95_ms)} ms`, "< 250 ms", r.loop.answer_to_worker_ask_wait.p95_ms < 250));
  }
  const wake = r.wait?.wake;
  if (wake?.wait) goals.push(goalRow("`wait` wake-up p95", `${ms(wake.wait.p95)} ms`, "< 250 ms", wake.wait.p95 < 250));
  if (wake?.ask) goals.push(goalRow("`ask --wait` wake-up p95", `${ms(wake.ask.p95)} ms`, "< 250 ms", wake.ask.p95 < 250));
  for (const [runtime, v] of Object.entries(r.wait?.idle ?? {})) {
    goals.push(goalRow(`CPU per idle minute of \`wait\` (${RUNTIME_LABEL[runtime]})`, `${ms(v.cpuPerMinuteMs)} ms`, "< 1000 ms", v.cpuPerMinuteMs < 1000));
  }
  for (const row of r.plan?.rows ?? []) {
    if (row.pass === null || row.pass === undefined || !row.goal) continue;
    const value = row.p95 === null || row.p95 === undefined ? `${ms(row.median)} ${row.unit}` : `median ${ms(row.median)}, p95 ${ms(row.p95)} ${row.unit}`;
    goals.push(goalRow(`${row.metric} (bench_plan.mjs, Node bundle)`, value, row.goal, row.pass));
  }
  return goals;
}

function table(head, rows) {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

function markdown(r) {
  const m = r.machine;
  const parts = [];
  parts.push(`Measured ${m.date} by \`npm run bench\` (${REPS} samples per point after one warm-up; medians and p95 of wall-clock time from spawn to exit, stdout piped; "cpu" = mean user+system time of the process).`);
  parts.push(table(["machine", ""], [
    ["CPU", m.cpu], ["memory", m.memory], ["OS", m.os], ["Node", m.node], ["Deno", m.deno], ["Bun (compiler of the binary)", m.bun],
    ["sqlite3 shell", m.sqlite3], ["orch's SQLite", m.engines], ["load average at start / end", `${m.load} / ${r.loadEnd}`], ["scheduling", m.sched],
  ]));
  const goals = evaluate(r);
  parts.push(`### Goals\n\n${table(["goal", "measured", "target", "result"], goals.map((g) => [g.name, g.value, g.goal, `${g.pass ? "PASS" : "**FAIL**"}${g.note ? ` (${g.note})` : ""}`]))}`);
  if (r.floors) {
    const f = r.floors;
    const rows = [["`node -e 0`", ms(f.node.median), ms(f.node.p95), ms(f.node.cpu)], ["`deno run` of an empty file", ms(f.deno.median), ms(f.deno.p95), ms(f.deno.cpu)]];
    if (f.hello) rows.push(["compiled hello-world (bun)", ms(f.hello.median), ms(f.hello.p95), ms(f.hello.cpu)]);
    parts.push(`### Runtime floors\n\n${table(["floor", "median ms", "p95 ms", "cpu ms"], rows)}`);
  }
  if (r.commands) {
    for (const [db, byRuntime] of Object.entries(r.commands)) {
      const sizeNote = r.fixtures[db] ? `, ${mb(r.fixtures[db].bytes)}: ${Object.entries(r.fixtures[db].counts).map(([k, v]) => `${v} ${k}`).join(", ")}` : "";
      const head = ["command", ...(r.floors?.sqlite?.[db] ? ["sqlite3 shell (native floor)"] : []), ...Object.keys(byRuntime).map((x) => RUNTIME_LABEL[x])];
      const rows = COMMANDS.map((c) => [
        `\`${c.name}\``,
        ...(r.floors?.sqlite?.[db] ? [`${ms(r.floors.sqlite[db][c.name].median)} / ${ms(r.floors.sqlite[db][c.name].p95)}`] : []),
        ...Object.values(byRuntime).map((x) => `${ms(x[c.name].median)} / ${ms(x[c.name].p95)} (cpu ${ms(x[c.name].cpu)})`),
      ]);
      parts.push(`### Commands on the ${SPECS[db].label} database${sizeNote}\n\nmedian / p95 ms\n\n${table(head, rows)}`);
    }
  }
  if (r.phases) {
    const keys = [["wall_ms", "wall"], ["start_ms", "process start to the write"], ["lock_wait_ms", "lock wait"], ["load_ms", "engine ready + read (sql.js) or copy (built-in SQLite) + open"], ["apply_ms", "transaction"], ["export_ms", "export"], ["flush_ms", "write + fsync + rename"]];
    parts.push(`### Where a write's time goes (${RUNTIME_LABEL[r.phases.runtime]}, \`inbox progress\`, medians from ORCH_DEBUG_TIMING)\n\n${table(
      ["database", ...keys.map((k) => `${k[1]} ms`)],
      Object.entries(r.phases.dbs).map(([db, m]) => [db, ...keys.map(([k]) => ms(m[k]))]),
    )}`);
  }
  if (r.contention) {
    parts.push(`### Contention (${RUNTIME_LABEL[r.contention.runtime]}, small database; each worker process runs 25 \`inbox progress\` in a row, all workers at once)\n\n${table(
      ["workers", "writes/s", "lock wait median ms", "lock wait p95 ms", "failed", "lost", "stored / expected"],
      r.contention.levels.map((l) => [l.workers, l.perSecond.toFixed(1), ms(l.lockWaitMedian), ms(l.lockWaitP95), l.failed, l.lost, `${l.stored} / ${l.writes}`]),
    )}\n\nLock wait comes from \`ORCH_DEBUG_TIMING=1\` (the CLI prints its phases to stderr). A lost write is one whose command succeeded but whose message is not in the database.`);
  }
  if (r.wait && (Object.keys(r.wait.wake).length > 0 || Object.keys(r.wait.idle).length > 0)) {
    const rows = [];
    if (r.wait.wake?.wait) rows.push(["`orch wait` wakes after a worker's write", ms(r.wait.wake.wait.median), ms(r.wait.wake.wait.p95)]);
    if (r.wait.wake?.ask) rows.push(["`inbox ask --wait` wakes after `answer`", ms(r.wait.wake.ask.median), ms(r.wait.wake.ask.p95)]);
    const idle = Object.entries(r.wait.idle ?? {}).map(([k, v]) => `${RUNTIME_LABEL[k]} ${ms(v.cpuPerMinuteMs)} ms`).join(", ");
    parts.push(`### Wake-up and idle cost\n\n${table(["measure", "median ms", "p95 ms"], rows)}\n\nLatency runs from the moment the write's new file is in place to the waiting process's exit (it has printed its result). CPU per idle minute of \`orch wait\`: ${idle}.`);
  }
  if (r.loop?.ask_to_leader_wait) {
    const row = (label, x) => [label, ms(x.median_ms), ms(x.p95_ms), String(x.n)];
    parts.push(`### The loop's waits (scripts/bench_loop.mjs, Node bundle, timed from the write's \`created_at\` to the waiter's output)\n\n${table(["measure", "median ms", "p95 ms", "n"], [
      row("worker `inbox ask` → leader's `orch wait --for task_blocked` prints", r.loop.ask_to_leader_wait),
      row("leader `orch answer` → worker's `inbox ask --wait` prints", r.loop.answer_to_worker_ask_wait),
    ])}`);
  }
  if (r.plan) {
    parts.push(`### The planning surface and \`wait\` (scripts/bench_plan.mjs, Node bundle, its own 1,000-task run with a random graph)\n\n${r.plan.markdown ?? `\`\`\`json\n${JSON.stringify(r.plan, null, 2)}\n\`\`\``}`);
  }
  if (r.memory) {
    const rows = Object.entries(r.memory.runs).map(([k, v]) => [RUNTIME_LABEL[k], ...Object.values(v).map(mb)]);
    parts.push(`### Peak memory and size on disk\n\nPeak resident memory of one command on the ${r.memory.db === "xl" ? "very large" : "large"} database:\n\n${table(["runtime", "status", "progress"], rows)}\n\nDatabase files: ${Object.entries(r.memory.sizes).map(([k, v]) => `${k} ${mb(v)}`).join(", ")}.`);
  }
  return parts.join("\n\n");
}

function writeReport(md) {
  const block = `${START}\n${md}\n${END}`;
  let text = existsSync(OUT) ? readFileSync(OUT, "utf8") : "# Benchmarks\n\n";
  if (text.includes(START) && text.includes(END)) text = text.slice(0, text.indexOf(START)) + block + text.slice(text.indexOf(END) + END.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(OUT, text);
}

// ---- main ----------------------------------------------------------------------

async function main() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "orch-bench-"));
  try {
    const tools = await buildAll(tmp);
    const r = { machine: machine(), fixtures: {} };
    log(`machine: ${r.machine.cpu}, ${r.machine.memory}, ${r.machine.os}; load ${r.machine.load}`);
    const fxmod = await fixturesModule();
    const fixtures = {};
    const needed = new Set(DBS);
    if (ONLY.has("contention") || ONLY.has("wait")) needed.add("small");
    if (ONLY.has("memory")) needed.add("xl");
    for (const db of ["small", "large", "xl"].filter((d) => needed.has(d))) {
      const t0 = performance.now();
      fixtures[db] = makeFixtureInChild(fxmod.file, path.join(tmp, `${db}.db`), SPECS[db]);
      r.fixtures[db] = { bytes: fixtures[db].bytes, counts: fixtures[db].counts };
      log(`built the ${db} database: ${mb(fixtures[db].bytes)} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const benchDbs = Object.fromEntries(DBS.map((d) => [d, fixtures[d]]));
    if (ONLY.has("floors")) r.floors = floors(benchDbs, tools, tmp);
    if (ONLY.has("commands")) r.commands = commands(benchDbs, tmp);
    if (ONLY.has("commands")) r.phases = writePhases(benchDbs, tmp);
    if (ONLY.has("contention")) r.contention = await contention(fixtures, tmp);
    const context = { root, bundle: BUNDLE, binary: canRunBinary ? BINARY : undefined, deno: DENO, mod: MOD, reps: REPS, tmp, runtimes: RUNTIMES };
    if (ONLY.has("wait")) {
      r.plan = await collaborator("bench_plan.mjs", "benchPlan", { reps: REPS, trials: REPS, idleSeconds: 20, log: (line) => log(`  ${line}`) });
      if (r.plan?.markdown) log(r.plan.markdown);
      r.loop = await collaborator("bench_loop.mjs", "benchLoop", { ...context, trials: REPS, log: (line) => log(`  ${line}`) });
      // our own measurements stand in for whatever those scripts do not (yet) measure
      const planMeasured = (word) => Boolean(r.plan?.rows?.some((row) => row.metric.includes(word)));
      r.wait = await waits(fixtures, fxmod, tmp, { ask: Boolean(r.loop?.answer_to_worker_ask_wait), wait: planMeasured("wake-up"), idle: planMeasured("idle") });
    }
    if (ONLY.has("memory")) r.memory = peakMemory(fixtures, tmp);
    r.loadEnd = os.loadavg().map((x) => x.toFixed(2)).join(", ");
    const md = markdown(r);
    log(`\n${md}`);
    if (!flag("no-write")) {
      writeReport(md);
      log(`\nwrote ${path.relative(process.cwd(), OUT) || OUT}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
