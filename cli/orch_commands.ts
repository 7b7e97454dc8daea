/** `orch` commands: the leader's planning and control verbs. */
import type { Command } from "commander";
import { z } from "zod";
import { act } from "./main.ts";
import { bodyFrom, type Context, intOption } from "./_context.ts";
import { OrchError } from "../lib/errors.ts";
import { bodySchema, check, idSchema, parseJsonArg, textSchema, titleSchema } from "../lib/validate.ts";
import * as runs from "../lib/runs.ts";
import * as tasks from "../lib/tasks.ts";
import { addDeps, dependenciesOf, dependentsOf, waitingDependents } from "../lib/deps.ts";
import * as attempts from "../lib/attempts.ts";
import { dispatchTask, reassignTask, retryTask, type CodeOptions } from "../lib/leader.ts";
import { readReconciled, reconcileFile } from "../lib/reconcile.ts";
import { addWorktreeState, blockedTasks, runShow, statusView, type StatusView, type TaskView } from "../lib/status.ts";
import { EVENT_DESCRIPTIONS, EVENT_TYPES, type OrchEvent, parseEventTypes } from "../lib/events.ts";
import { waitForEvents } from "../lib/wait.ts";
import { registerCleanup } from "./cleanup_command.ts";
import { registerArchive } from "./archive_command.ts";
import { kv, oneLine, paint, relative, status, table } from "./_format.ts";

const runId = (v: unknown) => check(idSchema("--run"), v, "--run");
const taskId = (v: unknown, flag = "--task") => check(idSchema(flag), v, flag);
const workerId = (v: unknown, flag = "--to") => check(idSchema(flag), v, flag);
const optWorker = (v: unknown, flag = "--to") => (v === undefined ? undefined : workerId(v, flag));
const optBody = (o: { body?: string; bodyFile?: string }) => {
  const body = bodyFrom(o, false);
  return body === undefined ? undefined : check(bodySchema(), body, "--body");
};
const modeSchema = z.enum(attempts.EXECUTION_MODES, { message: `must be ${attempts.EXECUTION_MODES.join(" or ")}` });

function required(o: Record<string, unknown>, ...flags: string[]): void {
  for (const flag of flags) {
    const key = flag.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (o[key] === undefined) throw new OrchError("usage", `missing required flag ${flag}`, { hint: "see --help" });
  }
}

function attemptLine(a: attempts.Attempt | null): string {
  if (!a) return "-";
  return `#${a.number} ${a.assigned_to} (${a.execution_mode}, thread ${a.thread_id})`;
}

function renderDispatch(verb: string, r: attempts.DispatchResult & { notes: string[] }): string {
  const a = r.attempt;
  const lines = [
    `${verb} ${r.run_id}/${r.task.id} attempt ${a.number} to ${a.assigned_to} (${a.execution_mode})`,
    kv([
      ["thread", a.thread_id],
      ["attempt id", a.id],
      ...(a.worktree_path
        ? ([
          ["worktree", a.worktree_path],
          ["branch", a.branch],
          ["base", `${a.base_ref} (${a.base_commit?.slice(0, 12)})`],
        ] as [string, string | null][])
        : []),
    ]),
    ...r.notes.map((n) => `${paint("yellow", "note:")} ${n}`),
    `next: launch a worker for thread ${a.thread_id} (orch-worker-brief renders its prompt)`,
  ];
  return lines.join("\n");
}

function codeOptions(o: Record<string, string | undefined>): CodeOptions | undefined {
  const c: CodeOptions = { repoPath: o.repoPath, baseRef: o.baseRef, workspaceRoot: o.workspaceRoot };
  return Object.values(c).some((v) => v !== undefined) ? c : undefined;
}

function renderStatus(v: StatusView): string {
  const c = v.counts;
  const head = `run ${paint("bold", v.run.id)} ${status(v.run.status)}: ${v.run.goal}\n` +
    `tasks: ${c.total} · done ${c.done} · running ${c.running} · blocked ${c.blocked} · dispatched ${c.dispatched} · ready ${c.ready} · waiting ${c.waiting} · failed ${c.failed} · cancelled ${c.cancelled}   (last event ${v.last_event_id})`;
  const rows = v.tasks.map((t: TaskView) => [
    t.id,
    status(t.ready ? "ready" : t.status),
    attemptLine(t.attempt),
    t.attempt?.lease ? relative(t.attempt.lease.expires_at) : "-",
    t.waiting_on.length > 0 ? `waits on ${tasks.describeBlockers(t.waiting_on)}` : (t.status === "failed" || t.status === "cancelled") && t.status_reason ? `${t.status}: ${oneLine(t.status_reason, 50)}` : t.latest_message ? `${t.latest_message.kind}: ${oneLine(t.latest_message.body, 50)}` : oneLine(t.title, 50),
  ]);
  const next = v.next.map((n) => `  ${n.action}${n.task_id ? ` ${n.task_id}` : ""}: ${oneLine(n.reason, 90)}${n.command ? `\n    ${paint("dim", n.command)}` : ""}`).join("\n");
  const trees = v.tasks.filter((t) => t.attempt?.worktree_path && t.attempt.worktree_removed_at === null).map((t) => {
    const d = t.attempt!.worktree_dirty;
    return `  ${t.id} #${t.attempt!.number} ${t.attempt!.worktree_path} (${t.attempt!.branch}) ${d === null ? "missing or unreadable" : d ? paint("yellow", "uncommitted changes") : "clean"}`;
  });
  const worktrees = trees.length > 0 ? `\n\nworktrees:\n${trees.join("\n")}` : "";
  return `${head}\n\n${table(["TASK", "STATUS", "ATTEMPT", "LEASE", "DETAIL"], rows) || "no tasks yet"}${worktrees}\n\nnext:\n${next || "  (nothing)"}`;
}

function renderEvents(events: readonly OrchEvent[]): string {
  return table(
    ["EVENT", "TYPE", "TASK", "ACTOR", "DETAIL"],
    events.map((e) => [String(e.id), e.type, e.task_id ?? "-", e.actor ?? "-", oneLine(Object.entries(e.data).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" "), 70)]),
  );
}

const EVENT_HELP = EVENT_TYPES.map((t) => `  ${t.padEnd(16)} ${EVENT_DESCRIPTIONS[t]}`).join("\n");

export function registerOrch(program: Command): void {
  // ---- runs -----------------------------------------------------------------
  const run = program.command("run").description("create, show and list runs");
  act(
    run.command("init").description("create a run (repeating the same call is safe: it reports existed: true)")
      .option("--run <id>", "(required) run id you choose: 1-64 letters, digits, '.', '_', '-', starting with a letter or digit")
      .option("--goal <text>", "(required) what the run must achieve (max 16 KiB)")
      .option("--summary <text>", "longer description (max 16 KiB; default empty)")
      .addHelpText("after", `
Safe to repeat after a timeout: the same arguments again succeed with
"existed": true and write nothing. A flag left out of the repeat is not compared.
The same id with a different goal or summary is refused with a conflict that
names each differing field (existing and given value). Appends run_created.

Output (--json): {"ok": true, "run": {"id", "goal", "summary", "status", "created_at", "updated_at"}, "existed": bool}
  run.status is active, done (every task done) or cancelled.

Errors:
  usage (exit 2)     missing --run/--goal, bad id characters, empty or oversized text
  conflict (exit 4)  the run exists with different content (error.details.differences lists them)

Example:
  orch --db ./coord.db --json run init --run blog_mvp_001 --goal "Build blog MVP" --summary "Public blog plus admin CRUD"`),
    async (o, ctx) => {
      required(o, "--run", "--goal");
      const input = {
        run: runId(o.run),
        goal: check(textSchema("--goal").refine((g) => g.trim().length > 0, "--goal must not be empty"), o.goal, "--goal"),
        summary: o.summary === undefined ? undefined : check(textSchema("--summary"), o.summary, "--summary"),
      };
      const r = await ctx.write((db) => runs.initRun(db, input));
      return { data: { ...r }, text: `run ${r.run.id} ${r.existed ? "already existed" : "created"}: ${r.run.goal}` };
    },
  );
  act(
    run.command("show").description("a run's metadata and task counts by status (lighter than status)")
      .option("--run <id>", "(required) the run")
      .addHelpText("after", `
Reconciles worker thread state first. For every task and what to do next, use
\`orch status\`.

Output (--json): {"ok": true, "run": {"id", "goal", "summary", "status", "created_at", "updated_at"},
  "counts": {"total", "pending", "ready", "dispatched", "running", "blocked", "done", "failed", "cancelled"},
  "last_event_id": N}
  counts.ready is the number of pending tasks whose dependencies are all done;
  last_event_id is the cursor for \`orch wait --after-event\`.

Errors:
  usage (exit 2)      missing or bad --run
  not_found (exit 3)  unknown run

Example:
  orch --db ./coord.db --json run show --run blog_mvp_001`),
    async (o, ctx) => {
      required(o, "--run");
      const id = runId(o.run);
      const r = await readReconciled(ctx.dbPath, id, (db) => runShow(db, id), ctx.store);
      const c = r.counts;
      return {
        data: { ...r },
        text: `${kv([["run", `${r.run.id} (${status(r.run.status)})`], ["goal", r.run.goal], ["summary", r.run.summary || "-"], ["created", r.run.created_at], ["last event", r.last_event_id]])}\n\n` +
          table(["TOTAL", "READY", "PENDING", "DISPATCHED", "RUNNING", "BLOCKED", "DONE", "FAILED", "CANCELLED"], [
            [c.total, c.ready, c.pending, c.dispatched, c.running, c.blocked, c.done, c.failed, c.cancelled].map(String),
          ]),
      };
    },
  );
  act(
    run.command("list").description("list every run in the database, oldest first")
      .addHelpText("after", `
Takes no flags besides the global ones (--db, --json).

Output (--json): {"ok": true, "runs": [{"id", "goal", "summary", "status", "created_at", "updated_at",
  "counts": {"total", "pending", "dispatched", "running", "blocked", "done", "failed", "cancelled"}}]}

Errors:
  usage (exit 2)      no --db (and no ORCH_DB)
  db_missing (exit 3) no database at --db (create it with \`inbox --db PATH init\`)

Example:
  orch --db ./coord.db --json run list`),
    async (_o, ctx) => {
      const list = await ctx.read((db) => runs.listRuns(db).map((r) => ({ ...r, counts: runs.taskCounts(db, r.id) })));
      return {
        data: { runs: list },
        text: list.length === 0 ? "no runs" : table(["RUN", "STATUS", "TASKS", "DONE", "GOAL"], list.map((r) => [r.id, status(r.status), String(r.counts.total), String(r.counts.done), oneLine(r.goal)])),
      };
    },
  );

  // ---- tasks ----------------------------------------------------------------
  const task = program.command("task").description("add and show tasks");
  act(
    task.command("add").description("add a task to a run (repeating the same call is safe: it reports existed: true)")
      .option("--run <id>", "(required) the run")
      .option("--task <id>", "(required) task id, unique within the run: 1-64 letters, digits, '.', '_', '-'")
      .option("--title <text>", "(required) one-line title (max 200 characters)")
      .option("--summary <text>", "what the task is about (max 16 KiB; default empty)")
      .option("--default-to <worker>", "the worker dispatch uses when it is given no --to")
      .option("--acceptance-json <json>", "acceptance criteria, a JSON object (max 64 KiB), e.g. '{\"kind\":\"analysis\"}'")
      .addHelpText("after", `
The task starts pending; it is ready once every task it depends on (dep add) is
done. Safe to repeat after a timeout: the same arguments again succeed with
"existed": true and write nothing (a flag left out of the repeat is not
compared; acceptance objects compare by content, key order ignored). The same id
with different content is refused with a conflict naming each differing field.
Appends task_added. Refused on a cancelled run; adding to a done run reopens it.

Output (--json): {"ok": true, "task": {"run_id", "id", "title", "summary", "default_to", "acceptance",
  "status", "status_reason", "created_at", "updated_at"}, "existed": bool}

Errors:
  usage (exit 2)          missing flag, bad id characters, empty/multi-line/oversized text,
                          --acceptance-json not valid JSON or not an object
  not_found (exit 3)      unknown run
  conflict (exit 4)       the task exists with different content (error.details.differences)
  invalid_state (exit 4)  the run is cancelled

Example:
  orch --db ./coord.db --json task add --run blog_mvp_001 --task T2 --title "Summarize flaky tests" --default-to qa-worker --acceptance-json '{"kind":"analysis"}'`),
    async (o, ctx) => {
      required(o, "--run", "--task", "--title");
      const input: tasks.TaskInput = {
        run: runId(o.run),
        task: taskId(o.task),
        title: check(titleSchema, o.title, "--title"),
        summary: o.summary === undefined ? undefined : check(textSchema("--summary"), o.summary, "--summary"),
        default_to: optWorker(o.defaultTo, "--default-to"),
        acceptance: o.acceptanceJson === undefined ? undefined : (parseJsonArg("--acceptance-json", o.acceptanceJson) as Record<string, unknown>),
      };
      const r = await ctx.write((db) => tasks.addTask(db, input));
      return { data: { ...r }, text: `task ${r.task.run_id}/${r.task.id} ${r.existed ? "already existed" : "added"}: ${r.task.title}` };
    },
  );
  act(
    task.command("show").description("one task: its fields, dependencies, dependents and every attempt")
      .option("--run <id>", "(required) the run")
      .option("--task <id>", "(required) the task")
      .addHelpText("after", `
Reconciles worker thread state first.

Output (--json): {"ok": true, "task": {"run_id", "id", "title", "summary", "default_to", "acceptance",
  "status", "status_reason", ...}, "depends_on": [TASK_ID...], "dependents": [TASK_ID...],
  "waiting_on": [{"task_id", "status"}], "ready": bool, "attempts": [{...every attempt, oldest first}]}
  waiting_on lists the dependencies that are not done yet.

Errors:
  usage (exit 2)      missing flag or bad id characters
  not_found (exit 3)  unknown run or task

Example:
  orch --db ./coord.db --json task show --run blog_mvp_001 --task T2`),
    async (o, ctx) => {
      required(o, "--run", "--task");
      const r0 = runId(o.run);
      const t0 = taskId(o.task);
      const r = await readReconciled(ctx.dbPath, r0, (db) => {
        const t = tasks.getTask(db, r0, t0);
        const waiting = tasks.waitingOn(db, r0, t0);
        return {
          task: t,
          depends_on: dependenciesOf(db, r0, t0),
          dependents: dependentsOf(db, r0, t0),
          waiting_on: waiting,
          ready: t.status === "pending" && waiting.length === 0,
          attempts: attempts.listAttemptRows(db, r0, t0).map((a) => attempts.toAttempt(db, a)),
        };
      }, ctx.store);
      const text = [
        kv([
          ["task", `${r.task.run_id}/${r.task.id} (${status(r.ready ? "ready" : r.task.status)})`],
          ["title", r.task.title],
          ["summary", r.task.summary || "-"],
          ["default to", r.task.default_to],
          ["acceptance", r.task.acceptance ? JSON.stringify(r.task.acceptance) : "-"],
          ["depends on", r.depends_on.join(", ") || "-"],
          ["waiting on", tasks.describeBlockers(r.waiting_on) || "-"],
          ["dependents", r.dependents.join(", ") || "-"],
        ]),
        r.attempts.length ? `\n${table(["ATTEMPT", "WORKER", "MODE", "STATUS", "THREAD", "REASON"], r.attempts.map((a) => [`#${a.number}`, a.assigned_to, a.execution_mode, status(a.status), String(a.thread_id), a.end_reason ?? "-"]))}` : "",
      ].join("\n");
      return { data: { ...r }, text };
    },
  );

  // ---- dependencies -----------------------------------------------------------
  const dep = program.command("dep").description("record dependencies between tasks");
  act(
    dep.command("add").description("record that --task depends on --depends-on (it becomes ready only when they are done)")
      .option("--run <id>", "(required) the run")
      .option("--task <id>", "(required) the task that waits")
      .option("--depends-on <ids...>", "(required) the task(s) it waits on: repeat the flag, list several after it, or give a comma list")
      .addHelpText("after", `
All or nothing: an unknown task, a self-dependency or a cycle refuses the whole
call and writes nothing; a cycle error names it, e.g.
  adding T1 -> T3 would make a cycle: T1 -> T3 -> T2 -> T1   ("A -> B": A depends on B)
and error.details.cycle lists the ids. Repeating a recorded dependency is safe
("existed": true). Dependencies can only be added to tasks not yet dispatched.
Appends one dep_added event per new dependency.

Output (--json): {"ok": true, "run_id", "task_id", "dependencies": [{"task_id", "depends_on", "existed"}]}

Errors:
  usage (exit 2)          missing flag or bad id characters
  not_found (exit 3)      unknown run, --task or --depends-on task
  cycle (exit 4)          self-dependency, or the dependency would close a cycle
  invalid_state (exit 4)  --task is already dispatched/finished, or the run is cancelled

Example:
  orch --db ./coord.db --json dep add --run blog_mvp_001 --task T3 --depends-on T1,T2`),
    async (o, ctx) => {
      required(o, "--run", "--task", "--depends-on");
      const r0 = runId(o.run);
      const t0 = taskId(o.task);
      const on = (o.dependsOn as string[]).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean).map((s) => taskId(s, "--depends-on"));
      if (on.length === 0) throw new OrchError("usage", "--depends-on needs at least one task id");
      const deps = await ctx.write((db) => addDeps(db, r0, t0, on));
      return {
        data: { run_id: r0, task_id: t0, dependencies: deps },
        text: deps.map((d) => `${t0} depends on ${d.depends_on}${d.existed ? " (already recorded)" : ""}`).join("\n"),
      };
    },
  );

  // ---- ready ----------------------------------------------------------------
  act(
    program.command("ready").description("tasks that can be dispatched now (not dispatched yet, every dependency done)")
      .option("--run <id>", "(required) the run")
      .addHelpText("after", `
Order: the order the tasks were added with \`task add\` (stable across calls).
Reconciles worker thread state first, so a task whose dependency a worker just
finished shows up. Failed and cancelled tasks are never ready (see \`orch retry\`).

Output (--json): {"ok": true, "run_id", "tasks": [{"run_id", "id", "title", "summary", "default_to",
  "acceptance", "status", "status_reason", "created_at", "updated_at"}]}

Errors:
  usage (exit 2)      missing or bad --run
  not_found (exit 3)  unknown run

Example:
  orch --db ./coord.db --json ready --run blog_mvp_001`),
    async (o, ctx) => {
      required(o, "--run");
      const r0 = runId(o.run);
      const ready = await readReconciled(ctx.dbPath, r0, (db) => tasks.readyTasks(db, r0), ctx.store);
      return {
        data: { run_id: r0, tasks: ready },
        text: ready.length === 0 ? `no task of ${r0} is ready` : table(["TASK", "DEFAULT TO", "TITLE"], ready.map((t) => [t.id, t.default_to ?? "-", oneLine(t.title)])),
      };
    },
  );

  // ---- dispatch and the loop -------------------------------------------------
  act(
    program.command("dispatch").description("hand a ready task to a worker: creates the attempt and its inbox thread (does not start a worker)")
      .option("--run <id>", "(required) the run")
      .option("--task <id>", "(required) the task; it must be ready (not dispatched, every dependency done)")
      .option("--execution-mode <mode>", "(required) analysis (inbox thread only) or code (also a fresh git worktree and branch)")
      .option("--to <worker>", "the worker the attempt is addressed to (default: the task's --default-to; one of the two is needed)")
      .option("--body <text>", "the assignment message (max 64 KiB; default: the task's title and summary)")
      .option("--body-file <path>", "read the assignment message from a file instead of --body")
      .option("--repo-path <path>", "code mode: the git repository (default: the one containing the current directory)")
      .option("--base-ref <ref>", "code mode: committed base to branch from (default: the repo's HEAD commit)")
      .option("--workspace-root <dir>", "code mode: where worktrees go (default: .orch/worktrees in the repo)")
      .addHelpText("after", `
Refused when the task is not ready (the error says what it waits on) or already
has an active attempt: dispatch never makes a duplicate attempt.

Code mode: the base ref is resolved to a commit, then branch orch/RUN/TASK/aN and
worktree WORKSPACE_ROOT/RUN/TASK-aN are made from it (absolute paths are recorded).
The workspace root is added to the repository's .git/info/exclude, never to a
tracked file. Uncommitted changes in the main checkout are NOT in the worktree;
"notes" says so. If anything fails, no attempt, branch or worktree is left.
Remove finished worktrees with \`orch cleanup\`.

Output (--json): {"ok": true, "run_id", "task": {...}, "attempt": {"id", "number", "thread_id",
  "assigned_to", "execution_mode", "status", "lease", "repo_path", "base_ref", "base_commit",
  "branch", "worktree_path", ...}, "assignment": {...message...}, "db": PATH, "notes": [...]}
Give attempt.thread_id and attempt.assigned_to to the worker (orch-worker-brief does).

Errors:
  usage (exit 2)          missing flag, bad id or mode, empty/oversized body, or neither --to
                          nor a task --default-to
  not_found (exit 3)      unknown run or task
  not_ready (exit 4)      a dependency is not done (the message names what it waits on)
  invalid_state (exit 4)  the task already has an active attempt, is done/failed/cancelled,
                          or the run is cancelled
  code mode: usage (not a git checkout; a ref or path with '-' first, '..', NUL or a line
  break), not_found (--repo-path missing, --base-ref not a commit, no commits yet),
  conflict (the worktree folder or branch already exists), git_failed (exit 8; git's
  own message is quoted)

Example:
  orch --db ./coord.db --json dispatch --run blog_mvp_001 --task T2 --execution-mode analysis --to qa-worker --body "Summarise the failing logs."`),
    async (o, ctx) => {
      required(o, "--run", "--task", "--execution-mode");
      const input = {
        run: runId(o.run),
        task: taskId(o.task),
        mode: check(modeSchema, o.executionMode, "--execution-mode"),
        to: optWorker(o.to),
        body: optBody(o),
        code: codeOptions(o),
      };
      if (input.mode !== "code" && input.code) throw new OrchError("usage", "--repo-path, --base-ref and --workspace-root apply to --execution-mode code only");
      const r = await dispatchTask(ctx.dbPath, input, ctx.store);
      return { data: { ...r, db: ctx.dbPath }, text: renderDispatch("dispatched", r) };
    },
  );

  act(
    program.command("reconcile").description("fold worker thread state into task state now (status, ready, blocked and wait do this themselves)")
      .option("--run <id>", "(required) the run to reconcile")
      .addHelpText("after", `
Folds: claimed -> running, question -> blocked, answer -> running, result -> done,
failure -> failed, lease expired -> failed (reason "lease expired"), with their
events (task_claimed, task_blocked, task_answered, task_done, lease_expired +
task_failed ...). Idempotent: a second call changes nothing, and when there is
nothing to fold it takes no lock and writes nothing.

Output (--json): {"ok": true, "run_id", "changed": N, "attempts": [{"attempt_id", "task_id", "from", "to"}]}

Errors: usage (exit 2) missing/bad --run; not_found (exit 3) unknown run.

Example:
  orch --db ./coord.db --json reconcile --run blog_mvp_001`),
    async (o, ctx) => {
      required(o, "--run");
      const r0 = runId(o.run);
      const r = await reconcileFile(ctx.dbPath, r0, ctx.store);
      return {
        data: { ...r },
        text: r.changed === 0 ? `nothing to reconcile in ${r0}` : r.attempts.map((a) => `${a.task_id}: attempt ${a.attempt_id} ${a.from} -> ${a.to}`).join("\n"),
      };
    },
  );

  act(
    program.command("wait").description("block until matching events exist after --after-event, then print them")
      .option("--run <id>", "(required) the run")
      .option("--for <types>", "event types to wait for: a comma list, or repeat the flag (default: any type)", (v: string, prev: string[] = []) => [...prev, v])
      .option("--after-event <id>", "only events with an id greater than this: pass the last_event_id of your previous wait, status or run show (default 0: from the start)")
      .option("--timeout-seconds <s>", "give up after this many seconds, 0-86400 (default 600; 0 checks once and returns)")
      .addHelpText("after", `
Returns at once if matching events already exist after --after-event; otherwise
blocks until one is written. It returns every matching event after the cursor
(oldest first, at most 1000) and "last_event_id", the cursor to pass as
--after-event next time (it also moves past the events that did not match).
Events of other types do not wake it with a result. Wakes within a fraction of
a second of another process's write (it polls the file's metadata, reloading
only on change, so it uses next to no CPU while idle), and when a watched lease
runs out (lease_expired and task_failed are written then). On timeout: ok, "timed_out": true, no events,
exit 0. Event ids are shared by all runs of the database, so ids of one run
have gaps.

Event types:
${EVENT_HELP}

Output (--json): {"ok": true, "run_id", "events": [{"id", "type", "task_id", "attempt_id", "thread_id",
  "message_id", "actor", "data", "created_at"}], "last_event_id": N, "timed_out": bool}
Pass last_event_id back as --after-event next time.

Errors:
  usage (exit 2)      missing --run, unknown event type in --for, bad number, or an
                      --after-event past the end of the log
  not_found (exit 3)  unknown run

Example:
  orch --db ./coord.db --json wait --run blog_mvp_001 --for task_blocked,task_done,task_failed --after-event 0 --timeout-seconds 900`),
    async (o, ctx) => {
      required(o, "--run");
      const r0 = runId(o.run);
      const named = o.for === undefined ? [] : (o.for as string[]).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean);
      if (o.for !== undefined && named.length === 0) throw new OrchError("usage", "--for needs at least one event type", { hint: `known types: ${EVENT_TYPES.join(", ")}` });
      const types = named.length > 0 ? parseEventTypes(named) : undefined;
      const after = intOption(o.afterEvent, "--after-event", 0, Number.MAX_SAFE_INTEGER) ?? 0;
      const timeout = intOption(o.timeoutSeconds, "--timeout-seconds", 0, 86_400) ?? 600;
      const r = await waitForEvents(ctx.dbPath, { run: r0, types, after, timeoutMs: timeout * 1000 }, ctx.store);
      return {
        data: { ...r },
        text: r.timed_out
          ? `timed out after ${timeout}s: no ${types ? `${types.join("/")} ` : ""}event after ${after} (last event ${r.last_event_id})`
          : `${renderEvents(r.events)}\n(last event ${r.last_event_id})`,
      };
    },
  );

  act(
    program.command("blocked").description("blocked tasks with their open question")
      .option("--run <id>", "(required) the run to look at")
      .addHelpText("after", `
Reconciles first. Answer each with \`orch answer --run RUN --task TASK --body TEXT\`.

Output (--json): {"ok": true, "run_id", "blocked": [{"task": {...}, "attempt": {"thread_id", "assigned_to", ...},
  "question": {"id", "body", "payload", "from", "created_at", ...}}]}

Errors: usage (exit 2) missing/bad --run; not_found (exit 3) unknown run.

Example:
  orch --db ./coord.db --json blocked --run blog_mvp_001`),
    async (o, ctx) => {
      required(o, "--run");
      const r0 = runId(o.run);
      const list = await readReconciled(ctx.dbPath, r0, (db) => blockedTasks(db, r0), ctx.store);
      return {
        data: { run_id: r0, blocked: list },
        text: list.length === 0 ? `no task of ${r0} is blocked` : list.map((b) => `${paint("bold", b.task.id)} (${b.attempt.assigned_to}, thread ${b.attempt.thread_id}) asks:\n${b.question.body.replace(/^/gm, "  ")}`).join("\n\n"),
      };
    },
  );

  act(
    program.command("answer").description("answer a blocked task's open question on its active attempt; the task runs again")
      .option("--run <id>", "(required) the run")
      .option("--task <id>", "(required) the blocked task whose open question this answers")
      .option("--body <text>", "(required unless --body-file) the answer text (max 64 KiB)")
      .option("--body-file <path>", "read the answer text from a file instead of --body")
      .option("--payload-json <json>", "a structured decision beside the text: a JSON object (max 64 KiB)")
      .addHelpText("after", `
The answer is posted on the active attempt's thread, addressed to its worker
(\`inbox ask --wait\` returns it; \`inbox wait\` shows it), and the task runs again.

Output (--json): {"ok": true, "task": {...}, "attempt": {...}, "question": {...}, "answer": {...}}

Errors:
  usage (exit 2)          missing flag, empty/oversized body, --payload-json not a JSON object
  not_found (exit 3)      unknown run or task
  invalid_state (exit 4)  the task is not blocked (nothing to answer)

Example:
  orch --db ./coord.db --json answer --run blog_mvp_001 --task T2 --body "MVP supports draft and published only." --payload-json '{"states":["draft","published"]}'`),
    async (o, ctx) => {
      required(o, "--run", "--task");
      const input = {
        run: runId(o.run),
        task: taskId(o.task),
        body: check(bodySchema(), bodyFrom(o, true), "--body"),
        payload: o.payloadJson === undefined ? undefined : parseJsonArg("--payload-json", o.payloadJson),
      };
      const r = await ctx.write((db) => attempts.answer(db, input));
      return { data: { ...r }, text: `answered ${r.task.id} (question ${r.question.id}); task is ${r.task.status}` };
    },
  );

  const loopCmd = (name: string, description: string) =>
    program.command(name).description(description)
      .option("--run <id>", "(required) the run")
      .option("--task <id>", "(required) the task")
      .option("--body <text>", "the new attempt's assignment message (max 64 KiB; default: the task's title and summary)")
      .option("--body-file <path>", "read the assignment message from a file instead of --body")
      .option("--base-ref <ref>", "code mode: a new base for the fresh worktree (default: the previous attempt's)")
      .option("--repo-path <path>", "code mode: the repository (default: the previous attempt's)")
      .option("--workspace-root <dir>", "code mode: where worktrees go (default: the previous attempt's)");

  act(
    loopCmd("retry", "make a fresh attempt (new thread; new worktree in code mode) for a failed, lease-expired or cancelled task")
      .option("--to <worker>", "the worker for the new attempt (default: the previous attempt's worker)")
      .addHelpText("after", `
Default worker: the previous attempt's. The old attempt's thread stays closed,
so its worker's token stays refused.

Output (--json): same as dispatch: {"ok": true, "run_id", "task", "attempt", "assignment", "db", "notes"}

Errors:
  usage (exit 2)          missing flag, bad id, empty/oversized body
  not_found (exit 3)      unknown run or task
  invalid_state (exit 4)  the task is not failed or cancelled (reassign replaces an active attempt)

Example:
  orch --db ./coord.db --json retry --run blog_mvp_001 --task T7a --to backend-worker --body "Retry after fixing the contract mismatch."`),
    async (o, ctx) => {
      required(o, "--run", "--task");
      const input = { run: runId(o.run), task: taskId(o.task), to: optWorker(o.to), body: optBody(o), code: codeOptions(o) };
      const r = await retryTask(ctx.dbPath, input, ctx.store);
      return { data: { ...r, db: ctx.dbPath }, text: renderDispatch("retried", r) };
    },
  );

  act(
    loopCmd("reassign", "cancel the active attempt (its worker is told) and dispatch a fresh one to another worker")
      .option("--to <worker>", "(required) the worker the new attempt goes to")
      .addHelpText("after", `
The old worker's thread gets a cancel message and its later writes are refused
(lease_lost, naming the reassignment); the new attempt gets a fresh thread.

Output (--json): dispatch's fields plus the ended attempt:
  {"ok": true, "run_id", "task", "attempt": {...the new one...}, "assignment", "db", "notes",
   "cancelled_attempt": {...the old attempt, status cancelled, end_reason reassigned...}}

Errors:
  usage (exit 2)          missing flag (--to is required), bad id, empty/oversized body
  not_found (exit 3)      unknown run or task
  invalid_state (exit 4)  the task has no active attempt (use retry for a failed task)

Example:
  orch --db ./coord.db --json reassign --run blog_mvp_001 --task T2 --to qa-worker-2 --body "Take over from qa-worker."`),
    async (o, ctx) => {
      required(o, "--run", "--task", "--to");
      const input = { run: runId(o.run), task: taskId(o.task), to: workerId(o.to), body: optBody(o), code: codeOptions(o) };
      const r = await reassignTask(ctx.dbPath, input, ctx.store);
      return { data: { ...r, db: ctx.dbPath }, text: `cancelled attempt ${r.cancelled_attempt.number} (${r.cancelled_attempt.assigned_to})\n${renderDispatch("reassigned", r)}` };
    },
  );

  act(
    program.command("cancel").description("cancel one task (--task) or the whole run; active attempts are ended and their workers told")
      .option("--run <id>", "(required) the run")
      .option("--task <id>", "only this task (default: every unfinished task, and the run)")
      .option("--body <text>", "the cancel message the active attempts' workers get")
      .option("--body-file <path>", "read the cancel message from a file")
      .addHelpText("after", `
Each active attempt's thread gets a cancel message and is closed; its worker's
later writes are refused (lease_lost, saying it was cancelled). History is kept.
Tasks that depend on a cancelled task stay pending and are reported as waiting
on it: here in "waiting_dependents", and in status (waiting_on, and next:
fix_dependency: retry the dependency or cancel the dependent). Without --task,
every unfinished task is cancelled and the run becomes cancelled (done tasks
are listed in already_finished). Appends task_cancelled per task, and
run_cancelled for a whole run, in the same transaction.

Output (--json): {"ok": true, "run_id", "cancelled_tasks": [TASK_ID...], "cancelled_attempts": [ATTEMPT_ID...],
  "already_finished": [TASK_ID...], "run_cancelled": bool,
  "waiting_dependents": [{"task_id", "waiting_on": [TASK_ID...]}]}

Errors:
  usage (exit 2)          bad id, empty/oversized body
  not_found (exit 3)      unknown run or task
  invalid_state (exit 4)  the task is already done or cancelled, or the run is already cancelled

Example:
  orch --db ./coord.db --json cancel --run blog_mvp_001 --task T3 --body "Out of scope."`),
    async (o, ctx) => {
      required(o, "--run");
      const input = { run: runId(o.run), task: o.task === undefined ? undefined : taskId(o.task), body: optBody(o) };
      const r = await ctx.write((db) => {
        const c = attempts.cancel(db, input);
        return { ...c, waiting_dependents: waitingDependents(db, c.run_id, c.cancelled_tasks) };
      });
      const stuck = r.waiting_dependents.map((d) => `\n${d.task_id} now waits on cancelled ${d.waiting_on.join(", ")}: retry it or cancel ${d.task_id}`).join("");
      return {
        data: { ...r },
        text: `${r.run_cancelled ? `run ${r.run_id} cancelled; ` : ""}cancelled tasks: ${r.cancelled_tasks.join(", ") || "none"}${r.cancelled_attempts.length ? ` (ended ${r.cancelled_attempts.length} active attempt(s))` : ""}${stuck}`,
      };
    },
  );

  act(
    program.command("status").description("the main view: the run, every task with its latest attempt, lease, latest message, what it waits on, and next steps")
      .option("--run <id>", "(required) the run")
      .addHelpText("after", `
Reconciles worker thread state first (lock-free when there is nothing to fold).
Task status words: pending (not dispatched; "ready" when every dependency is
done, else it lists waiting_on), dispatched (no worker has claimed it yet),
running, blocked (a question is open), done, failed, cancelled.
"next" lists what the leader can do now, most urgent first, each with a
command line to fill in (CAPITALS are placeholders; a|b means pick one):
  answer          a blocked task's question (orch answer)
  retry           a failed task (orch retry)
  dispatch        a ready task (orch dispatch)
  fix_dependency  a pending task waits on a failed or cancelled task: retry that
                  task, or cancel this one
  wait            workers are busy: orch wait --after-event LAST_EVENT_ID
  add_tasks       the run has no tasks yet
  done            nothing left: the run is done or cancelled, or every task is
                  done or cancelled

Output (--json): {"ok": true, "run": {"id", "goal", "summary", "status", ...},
  "counts": {"total", "pending", "ready", "waiting", "dispatched", "running", "blocked", "done", "failed", "cancelled"},
  "last_event_id": N,
  "tasks": [{"id", "title", "summary", "default_to", "acceptance", "status", "status_reason", "ready",
             "depends_on": [TASK_ID...], "waiting_on": [{"task_id", "status"}], "attempts": N,
             "attempt": {...latest attempt: "number", "assigned_to", "thread_id", "status", "lease": {"worker",
               "expires_at", ...} | null, "repo_path", "base_ref", "base_commit", "branch", "worktree_path",
               "worktree_removed_at", "worktree_dirty": true/false for a live worktree (one git status
               each), null otherwise} | null,
             "latest_message": {"id", "kind", "from", "body", "created_at"} | null}],
  "next": [{"action", "task_id"?, "reason", "command"?}]}

Errors:
  usage (exit 2)      missing or bad --run
  not_found (exit 3)  unknown run

Example:
  orch --db ./coord.db --json status --run blog_mvp_001`),
    async (o, ctx) => {
      required(o, "--run");
      const r0 = runId(o.run);
      const v = await addWorktreeState(await readReconciled(ctx.dbPath, r0, (db) => statusView(db, r0), ctx.store));
      return { data: { ...v }, text: renderStatus(v) };
    },
  );

  registerCleanup(program);
  registerArchive(program);
}

export type { Context };
