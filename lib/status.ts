/**
 * The leader's views of a run: `status` (everything needed to decide the next
 * step in one call), `run show` (the aggregate), `blocked` (open questions).
 */
import type { Db } from "./sqlite.ts";
import { getRun, type Run, taskCounts, type TaskCounts } from "./runs.ts";
import { type Blocker, getTaskRow, isActive, listTaskRows, type TaskStatus, toTask, type Task, waitingOnAll } from "./tasks.ts";
import { type Attempt, type AttemptRow, latestAttemptRow, toAttempt } from "./attempts.ts";
import { type LeaseRow, type Message, preview, toMessage } from "./inbox.ts";
import { lastEventId } from "./events.ts";
import { isoTime } from "./_time.ts";

export interface MessageSummary {
  id: number;
  kind: string;
  from: string;
  body: string;
  created_at: string;
}

export interface TaskView extends Task {
  depends_on: string[];
  waiting_on: Blocker[];
  ready: boolean;
  attempts: number;
  attempt: AttemptView | null;
  latest_message: MessageSummary | null;
}

/** The latest attempt as status shows it: `worktree_dirty` is true/false for a live worktree (see addWorktreeState), else null. */
export type AttemptView = Attempt & { worktree_dirty: boolean | null };

/**
 * One thing the leader can do now. `command` is a ready-to-edit command line
 * (flags in CAPITALS are for the leader to fill in).
 */
export interface NextAction {
  action: "add_tasks" | "answer" | "retry" | "dispatch" | "fix_dependency" | "wait" | "done";
  task_id?: string;
  reason: string;
  command?: string;
}

export interface StatusView {
  run: Run;
  counts: TaskCounts & { ready: number; waiting: number };
  last_event_id: number;
  tasks: TaskView[];
  next: NextAction[];
}

function dependencyMap(db: Db, runId: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const r of db.all<{ task_id: string; depends_on: string }>(
    "SELECT d.task_id, d.depends_on FROM deps d JOIN tasks t ON t.run_id = d.run_id AND t.id = d.depends_on WHERE d.run_id = ? ORDER BY t.seq",
    [runId],
  )) {
    const list = map.get(r.task_id) ?? [];
    list.push(r.depends_on);
    map.set(r.task_id, list);
  }
  return map;
}

const DEAD_ENDS: readonly TaskStatus[] = ["failed", "cancelled"];

/** The event types a leader usually waits for (status suggests `wait --for` them). */
export const LEADER_WAIT_TYPES = ["task_blocked", "task_done", "task_failed"] as const;

/**
 * What the leader can do now, most urgent first: answer open questions, retry
 * failures, dispatch ready work, unstick tasks whose dependency failed or was
 * cancelled, then wait for workers. One call to `status` is enough to choose.
 */
function nextActions(tasks: readonly TaskView[], run: Run, lastEventId: number): NextAction[] {
  const r = run.id;
  if (run.status === "done") return [{ action: "done", reason: "every task is done" }];
  if (run.status === "cancelled") return [{ action: "done", reason: "the run is cancelled" }];
  if (tasks.length === 0) {
    return [{ action: "add_tasks", reason: "the run has no tasks yet", command: `orch task add --run ${r} --task ID --title TITLE` }];
  }
  const next: NextAction[] = [];
  const byId = new Map(tasks.map((t) => [t.id, t]));
  for (const t of tasks) {
    if (t.status === "blocked") {
      next.push({ action: "answer", task_id: t.id, reason: `question: ${t.latest_message?.body ?? ""}`, command: `orch answer --run ${r} --task ${t.id} --body ANSWER` });
    } else if (t.status === "failed") {
      next.push({ action: "retry", task_id: t.id, reason: t.status_reason ?? "the attempt failed", command: `orch retry --run ${r} --task ${t.id}` });
    }
  }
  for (const t of tasks) {
    if (!t.ready) continue;
    const to = t.default_to ? "" : " --to WORKER";
    next.push({
      action: "dispatch",
      task_id: t.id,
      reason: t.depends_on.length > 0 ? "ready: every dependency is done" : "ready: it has no dependencies",
      command: `orch dispatch --run ${r} --task ${t.id} --execution-mode analysis|code${to}`,
    });
  }
  for (const t of tasks) {
    const dead = t.waiting_on.filter((b) => DEAD_ENDS.includes(b.status));
    if (t.status !== "pending" || dead.length === 0) continue;
    const first = byId.get(dead[0]!.task_id);
    const to = first && !first.default_to && !first.attempt ? " --to WORKER" : "";
    next.push({
      action: "fix_dependency",
      task_id: t.id,
      reason: `waits on ${dead.map((b) => `${b.task_id} (${b.status})`).join(", ")}, which will not finish by itself: retry ${dead.length > 1 ? "them" : "it"}, or cancel ${t.id}`,
      command: `orch retry --run ${r} --task ${dead[0]!.task_id}${to}`,
    });
  }
  const working = tasks.filter((t) => isActive(t.status));
  if (working.length > 0) {
    next.push({
      action: "wait",
      reason: `${working.length} task(s) with workers: ${working.map((t) => `${t.id} (${t.status})`).join(", ")}`,
      command: `orch wait --run ${r} --for ${LEADER_WAIT_TYPES.join(",")} --after-event ${lastEventId} --timeout-seconds 900`,
    });
  }
  if (next.length === 0) {
    const done = tasks.filter((t) => t.status === "done").length;
    next.push({ action: "done", reason: `no open work: ${done} done, ${tasks.length - done} cancelled` });
  }
  return next;
}

/**
 * The run's latest attempts, their live leases and their threads' latest
 * messages, in three queries: status shows every task, and a query per task
 * each (four per task) was most of its time on a large run.
 */
function latestAttemptsOf(db: Db, runId: string) {
  const attempts = new Map<string, AttemptRow>();
  for (const a of db.all<AttemptRow>(
    `SELECT a.* FROM attempts a WHERE a.run_id = ?
       AND a.number = (SELECT max(b.number) FROM attempts b WHERE b.run_id = a.run_id AND b.task_id = a.task_id)`,
    [runId],
  )) attempts.set(a.task_id, a);
  const leases = new Map<number, LeaseRow>();
  for (const l of db.all<LeaseRow & { for_thread: number }>(
    `SELECT l.*, t.id AS for_thread FROM attempts a JOIN threads t ON t.id = a.thread_id
       JOIN leases l ON l.token = t.lease_token AND l.ended_at IS NULL WHERE a.run_id = ?`,
    [runId],
  )) leases.set(l.for_thread, l);
  const messages = new Map<number, MessageSummary>();
  for (const m of db.all<{ thread_id: number; id: number; kind: string; sender: string; body: string; created_at: number }>(
    `SELECT m.thread_id, m.id, m.kind, m.sender, m.body, m.created_at FROM attempts a
       JOIN messages m ON m.id = (SELECT max(x.id) FROM messages x WHERE x.thread_id = a.thread_id) WHERE a.run_id = ?`,
    [runId],
  )) messages.set(m.thread_id, { id: m.id, kind: m.kind, from: m.sender, body: preview(m.body), created_at: isoTime(m.created_at) });
  return { attempts, leases, messages };
}

export function statusView(db: Db, runId: string): StatusView {
  const run = getRun(db, runId);
  const waiting = waitingOnAll(db, runId);
  const deps = dependencyMap(db, runId);
  const latestOf = latestAttemptsOf(db, runId);
  const tasks: TaskView[] = listTaskRows(db, runId).map((row) => {
    const latest = latestOf.attempts.get(row.id);
    const waitingOn = waiting.get(row.id) ?? [];
    return {
      ...toTask(row),
      depends_on: deps.get(row.id) ?? [],
      waiting_on: waitingOn,
      ready: row.status === "pending" && waitingOn.length === 0,
      attempts: latest?.number ?? 0,
      attempt: latest ? { ...toAttempt(db, latest, latestOf.leases.get(latest.thread_id) ?? null), worktree_dirty: null } : null,
      latest_message: latest ? latestOf.messages.get(latest.thread_id) ?? null : null,
    };
  });
  const base = taskCounts(db, runId);
  const ready = tasks.filter((t) => t.ready).length;
  const last = lastEventId(db, runId);
  return {
    run,
    counts: { ...base, ready, waiting: (base.pending ?? 0) - ready },
    last_event_id: last,
    tasks,
    next: nextActions(tasks, run, last),
  };
}

/**
 * Fills `attempt.worktree_dirty` for each latest attempt with a live worktree
 * (one `git status` each, a few at a time). Git (and dax) load only when a
 * run has such a worktree, so analysis-only runs never pay for them.
 */
export async function addWorktreeState(view: StatusView): Promise<StatusView> {
  const live = view.tasks.map((t) => t.attempt).filter((a): a is AttemptView => !!a?.worktree_path && a.worktree_removed_at === null);
  if (live.length === 0) return view;
  const { worktreeDirty } = await import("./worktrees.ts");
  for (let i = 0; i < live.length; i += 4) {
    await Promise.all(live.slice(i, i + 4).map(async (a) => void (a.worktree_dirty = await worktreeDirty(a.worktree_path!))));
  }
  return view;
}

export function runShow(db: Db, runId: string): { run: Run; counts: TaskCounts & { ready: number }; last_event_id: number } {
  const run = getRun(db, runId);
  const counts = taskCounts(db, runId);
  const ready = Number(db.value(
    `SELECT count(*) FROM tasks t WHERE t.run_id = ? AND t.status = 'pending' AND NOT EXISTS (
       SELECT 1 FROM deps d JOIN tasks u ON u.run_id = d.run_id AND u.id = d.depends_on
       WHERE d.run_id = t.run_id AND d.task_id = t.id AND u.status != 'done')`,
    [runId],
  ));
  return { run, counts: { ...counts, ready }, last_event_id: lastEventId(db, runId) };
}

export interface BlockedTask {
  task: Task;
  attempt: Attempt;
  question: Message;
}

export function blockedTasks(db: Db, runId: string): BlockedTask[] {
  getRun(db, runId);
  return db.all<{ id: string }>("SELECT id FROM tasks WHERE run_id = ? AND status = 'blocked' ORDER BY seq", [runId]).map(({ id }) => {
    const a = latestAttemptRow(db, runId, id)!;
    const q = db.get<Parameters<typeof toMessage>[0]>(
      "SELECT * FROM messages WHERE thread_id = ? AND kind = 'question' ORDER BY id DESC LIMIT 1",
      [a.thread_id],
    )!;
    return { task: toTask(getTaskRow(db, runId, id)), attempt: toAttempt(db, a), question: toMessage(q) };
  });
}

export interface TaskDetail extends TaskView {
  dependents: string[];
  history: Attempt[];
}
