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

/** Adjacency of the run: task -> the tasks it depends on. */
function dependencyGraph(db: Db, runId: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const r of db.all<{ task_id: string; depends_on: string }>("SELECT task_id, depends_on FROM deps WHERE run_id = ?", [runId])) {
    const list = graph.get(r.task_id);
    if (list) list.push(r.depends_on);
    else graph.set(r.task_id, [r.depends_on]);
  }
  return graph;
}

/** A path from `from` to `to` along dependency edges, or null (iterative DFS). */
function findPath(graph: Map<string, string[]>, from: string, to: string): string[] | null {
  const parent = new Map<string, string | null>([[from, null]]);
  const stack = [from];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (node === to) {
      const path: string[] = [];
      for (let n: string | null = node; n !== null; n = parent.get(n) ?? null) path.push(n);
      return path.reverse();
    }
    for (const next of graph.get(node) ?? []) {
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
 * unknown task, a self-dependency or a cycle refuses the whole call.
 */
export function addDeps(db: Db, runId: string, taskId: string, dependsOn: readonly string[]): DepResult[] {
  assertRunOpen(getRun(db, runId));
  const task = getTaskRow(db, runId, taskId);
  const graph = dependencyGraph(db, runId);
  const results: DepResult[] = [];
  for (const dep of dependsOn) {
    if (dep === taskId) {
      throw new OrchError("cycle", `task ${taskId} cannot depend on itself`, { details: { cycle: [taskId, taskId] } });
    }
    if (!findTaskRow(db, runId, dep)) {
      throw new OrchError("not_found", `task ${dep} does not exist in run ${runId} (named by --depends-on)`, {
        hint: `add it first with \`orch task add --run ${runId} --task ${dep} ...\``,
      });
    }
    const existed = (graph.get(taskId) ?? []).includes(dep);
    if (!existed) {
      const path = findPath(graph, dep, taskId);
      if (path) {
        const cycle = [taskId, ...path];
        throw new OrchError("cycle", `adding ${taskId} -> ${dep} would make a cycle: ${cycle.join(" -> ")}`, {
          hint: "a task can only depend on tasks that do not (directly or indirectly) depend on it",
          details: { cycle },
        });
      }
      if (task.status !== "pending") {
        throw new OrchError("invalid_state", `task ${taskId} is already ${task.status}; dependencies only apply to tasks not yet dispatched`);
      }
      graph.set(taskId, [...(graph.get(taskId) ?? []), dep]);
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
