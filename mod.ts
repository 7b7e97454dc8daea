/**
 * orch: a durable control plane for one leader agent and several worker
 * agents, kept in one SQLite file (sql.js, no native code) that every process
 * on the machine can share.
 *
 * This module is the library surface. Run it as a program to get the CLI:
 * `deno run -A mod.ts <args>` (the `orch` entry point; `inbox ...` and
 * `worker-brief ...` are its subcommands).
 *
 * @example
 * ```ts
 * import { initDatabase, writeTransaction, readSnapshot, initRun, addTask, readyTasks } from "./mod.ts";
 *
 * const db = "/tmp/coord.db";
 * await initDatabase(db);
 * await writeTransaction(db, (tx) => {
 *   initRun(tx, { run: "r1", goal: "ship it" });
 *   addTask(tx, { run: "r1", task: "T1", title: "Skeleton", default_to: "w1" });
 * });
 * const snap = await readSnapshot(db);
 * console.log(readyTasks(snap, "r1").map((t) => t.id)); // ["T1"]
 * snap.close();
 * ```
 * @module
 */

export { OrchError, EXIT_CODES, type ErrorCode } from "./lib/errors.ts";
export { initDatabase, readSnapshot, writeTransaction, fileStamp, type StoreOptions, type InitResult } from "./lib/storage.ts";
export { Db } from "./lib/sqlite.ts";
export { SCHEMA_VERSION } from "./lib/schema.ts";
export { initRun, getRun, listRuns, type Run, type RunStatus } from "./lib/runs.ts";
export { addTask, getTask, readyTasks, waitingOn, type Task, type TaskStatus, type TaskInput } from "./lib/tasks.ts";
export { addDeps, dependenciesOf, dependentsOf, waitingDependents } from "./lib/deps.ts";
export {
  answer,
  cancel,
  dispatch,
  reassign,
  retry,
  type Attempt,
  type AttemptStatus,
  type DispatchResult,
  type ExecutionMode,
} from "./lib/attempts.ts";
export { dispatchTask, reassignTask, retryTask } from "./lib/leader.ts";
export { cleanup, type CleanupInput, type CleanupResult } from "./lib/cleanup.ts";
export { archiveRun, type ArchiveInput, type ArchiveResult } from "./lib/archive.ts";
export { createWorkspace, discardWorkspace, type PreparedWorkspace, type WorkspaceRequest } from "./lib/worktrees.ts";
export {
  ask,
  claim,
  fail,
  finish,
  heartbeat,
  listThreads,
  progress,
  release,
  send,
  showThread,
  type Lease,
  type Message,
  type MessageKind,
  type Thread,
} from "./lib/inbox.ts";
export { reconcileFile, reconcileRun, readReconciled, type ReconcileResult } from "./lib/reconcile.ts";
export { EVENT_TYPES, listEvents, parseEventTypes, type EventType, type OrchEvent } from "./lib/events.ts";
export { waitForEvents, waitForMessages } from "./lib/wait.ts";
export { addWorktreeState, blockedTasks, runShow, statusView, type StatusView } from "./lib/status.ts";
export { LIMITS } from "./lib/validate.ts";
export { parseDispatchJson, renderBrief, BRIEF_PLACEHOLDERS, type BriefInput, type DispatchRef } from "./lib/brief.ts";
export { VERSION, versionInfo } from "./lib/version.ts";

declare global {
  interface ImportMeta {
    main?: boolean;
  }
}

if (import.meta.main) {
  const { runFromProcess } = await import("./cli/entry.ts");
  const { argv } = await import("./lib/_runtime.ts");
  // `deno run -A mod.ts` is the orch entry point; ORCH_ENTRY can pick another.
  await runFromProcess(argv(), "orch");
}
