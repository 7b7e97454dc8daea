/** Dependencies between tasks of one run; cycles are refused, naming the cycle. */
import type { Db } from "./sqlite.ts";
import * as rt from "./_runtime.ts";
import { OrchError } from "./errors.ts";
import { appendEvent } from "./events.ts";
import { assertRunOpen, getRun } from "./runs.ts";
import { findTaskRow, getTaskRow } from "./tasks.ts";

export interface DepResult {
  task_id: string;
  depends_on: string;
  existed: boolean;
}

/**
 * A path from `from` to `to` along dependency edges, or null. Iterative DFS
 * (a 5,000-task chain must not overflow the stack) that reads each visited
 * task's edges by primary key, so a check touches only what `from` depends
 * on, transitively, not the whole run.
 */
function findPath(db: Db, runId: string, from: string, to: string): string[] | null {
  const parent = new Map<string, string | null>([[from, null]]);
  const stack = [from];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (node === to) {
      const path: string[] = [];
      for (let n: string | null = node; n !== null; n = parent.get(n) ?? null) path.push(n);
      return path.reverse();
    }
    for (const { depends_on: next } of db.all<{ depends_on: string }>("SELECT depends_on FROM deps WHERE run_id = ? AND task_id = ?", [runId, node])) {
      if (!parent.has(next)) {
        parent.set(next, node);
        stack.push(next);
      }
    }
  }
  return null;
}

/**
 * Records that `taskId` depends on each of `dependsOn`. All or nothing: an
 * unknown task, a self-dependency or a cycle refuses the whole call and
 * nothing is written. Repeating a recorded dependency reports existed: true.
 */
export function addDeps(db: Db, runId: string, taskId: string, dependsOn: readonly string[]): DepResult[] {
  const run = getRun(db, runId);
  const task = getTaskRow(db, runId, taskId);
  const results: DepResult[] = [];
  for (const dep of new Set(dependsOn)) {
    if (dep === taskId) {
      throw new OrchError("cycle", `task ${taskId} cannot depend on itself (${taskId} -> ${taskId})`, {
        hint: "name the other task in --depends-on",
        details: { cycle: [taskId, taskId] },
      });
    }
    if (!findTaskRow(db, runId, dep)) {
      throw new OrchError("not_found", `task ${dep} does not exist in run ${runId} (named by --depends-on)`, {
        hint: `add it first with \`orch task add --run ${runId} --task ${dep} --title ...\``,
      });
    }
    const existed = db.get("SELECT 1 AS x FROM deps WHERE run_id = ? AND task_id = ? AND depends_on = ?", [runId, taskId, dep]) !== undefined;
    if (!existed) {
      // a repeat of recorded dependencies is answered even on a cancelled run; new ones are refused there
      assertRunOpen(run);
      // new edges of this call all start at taskId, so they cannot be part of a path from dep back to it
      const path = findPath(db, runId, dep, taskId);
      if (path) {
        const cycle = [taskId, ...path];
        throw new OrchError("cycle", `adding ${taskId} -> ${dep} would make a cycle: ${cycle.join(" -> ")}`, {
          hint: "a task can only depend on tasks that do not (directly or indirectly) depend on it",
          details: { cycle },
        });
      }
      if (task.status !== "pending") {
        throw new OrchError("invalid_state", `task ${taskId} is already ${task.status}; dependencies can only be added to tasks not yet dispatched`, {
          hint: `see the run with \`orch status --run ${runId}\``,
        });
      }
    }
    results.push({ task_id: taskId, depends_on: dep, existed });
  }
  const now = rt.now();
  for (const r of results) {
    if (r.existed) continue;
    db.run("INSERT INTO deps (run_id, task_id, depends_on, created_at) VALUES (?, ?, ?, ?)", [runId, taskId, r.depends_on, now]);
    appendEvent(db, { run_id: runId, type: "dep_added", task_id: taskId, actor: "leader", data: { depends_on: r.depends_on } });
  }
  return results;
}

export function dependenciesOf(db: Db, runId: string, taskId: string): string[] {
  return db.all<{ depends_on: string }>(
    "SELECT d.depends_on FROM deps d JOIN tasks t ON t.run_id = d.run_id AND t.id = d.depends_on WHERE d.run_id = ? AND d.task_id = ? ORDER BY t.seq",
    [runId, taskId],
  ).map((r) => r.depends_on);
}

export function dependentsOf(db: Db, runId: string, taskId: string): string[] {
  return db.all<{ task_id: string }>(
    "SELECT d.task_id FROM deps d JOIN tasks t ON t.run_id = d.run_id AND t.id = d.task_id WHERE d.run_id = ? AND d.depends_on = ? ORDER BY t.seq",
    [runId, taskId],
  ).map((r) => r.task_id);
}

export interface WaitingDependent {
  task_id: string;
  waiting_on: string[];
}

/**
 * Unfinished tasks that depend directly on any of `taskIds` (e.g. the tasks
 * just cancelled), with which of those they wait on, in task order. They stay
 * pending and will not become ready until the leader retries the dependency
 * or cancels them.
 */
export function waitingDependents(db: Db, runId: string, taskIds: readonly string[]): WaitingDependent[] {
  const wanted = new Set(taskIds);
  const byTask = new Map<string, string[]>();
  for (const r of db.all<{ task_id: string; depends_on: string }>(
    `SELECT d.task_id, d.depends_on FROM deps d
     JOIN tasks t ON t.run_id = d.run_id AND t.id = d.task_id
     JOIN tasks u ON u.run_id = d.run_id AND u.id = d.depends_on
     WHERE d.run_id = ? AND t.status NOT IN ('done', 'cancelled') ORDER BY t.seq, u.seq`,
    [runId],
  )) {
    if (!wanted.has(r.depends_on)) continue;
    const list = byTask.get(r.task_id) ?? [];
    list.push(r.depends_on);
    byTask.set(r.task_id, list);
  }
  return [...byTask].map(([task_id, waiting_on]) => ({ task_id, waiting_on }));
}
