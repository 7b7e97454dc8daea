/**
 * The leader's verbs that reach outside the database: dispatch, retry and
 * reassign in code mode create a git worktree first. The order keeps the
 * "nothing half-made" rule: check on a snapshot, make the worktree, then
 * write the attempt in one transaction; if that write fails, the worktree
 * and branch are removed again.
 */
import type { CodeWorkspace, DispatchResult, ExecutionMode } from "./attempts.ts";
import * as attempts from "./attempts.ts";
import { readSnapshot, type StoreOptions, writeTransaction } from "./storage.ts";
import type { Db } from "./sqlite.ts";
import * as rt from "./_runtime.ts";
import { OrchError } from "./errors.ts";
// worktrees.ts loads dax only when git runs, so this static import stays light
import { workspaceRootOf } from "./worktrees.ts";

export interface CodeOptions {
  repoPath?: string;
  baseRef?: string;
  workspaceRoot?: string;
}

export interface LeaderDispatchInput {
  run: string;
  task: string;
  mode: ExecutionMode;
  to?: string;
  body?: string;
  code?: CodeOptions;
}

export type WithNotes<T> = T & { notes: string[] };

async function withWorkspace<T>(
  dbPath: string,
  store: StoreOptions,
  plan: (db: Db) => { mode: ExecutionMode; number: number; run: string; task: string; defaults?: CodeOptions },
  code: CodeOptions | undefined,
  write: (db: Db, ws: CodeWorkspace | undefined) => T,
  knownMode?: ExecutionMode,
): Promise<WithNotes<T>> {
  const analysis = async (mode: ExecutionMode) => {
    if (Object.keys(definedOnly(code)).length > 0) {
      throw new OrchError("usage", `--repo-path, --base-ref and --workspace-root apply to code mode only, and this attempt runs in ${mode} mode`);
    }
    return { ...(await writeTransaction(dbPath, (db) => write(db, undefined), store)), notes: [] };
  };
  // analysis mode touches nothing outside the database: the write checks everything itself
  if (knownMode === "analysis") return analysis(knownMode);
  const snapshot = await readSnapshot(dbPath);
  let p: ReturnType<typeof plan>;
  try {
    p = plan(snapshot);
  } finally {
    snapshot.close();
  }
  if (p.mode !== "code") return analysis(p.mode);
  const { createWorkspace, discardWorkspace } = await import("./worktrees.ts");
  const prepared = await createWorkspace({ run: p.run, task: p.task, attempt: p.number, cwd: rt.cwd(), ...p.defaults, ...definedOnly(code) });
  const { notes, main_checkout_dirty: _dirty, ...ws } = prepared;
  try {
    const result = await writeTransaction(dbPath, (db) => {
      // the attempt number must still be the one the worktree was named for
      if (attempts.nextAttemptNumber(db, p.run, p.task) !== p.number) {
        plan(db); // usually throws the precise reason (e.g. the task is no longer ready)
        throw new OrchError("conflict", `another process started attempt ${p.number} of ${p.run}/${p.task} at the same time`, {
          hint: "check `orch status`, then retry the command if still needed",
        });
      }
      return write(db, ws);
    }, store);
    return { ...result, notes };
  } catch (err) {
    await discardWorkspace(ws);
    throw err;
  }
}

export function dispatchTask(dbPath: string, input: LeaderDispatchInput, store: StoreOptions = {}): Promise<WithNotes<DispatchResult>> {
  return withWorkspace(
    dbPath,
    store,
    (db) => ({ ...attempts.checkDispatch(db, input), mode: input.mode, run: input.run, task: input.task }),
    input.code,
    (db, workspace) => attempts.dispatch(db, { ...input, workspace }),
    input.mode,
  );
}

export interface LeaderRetryInput {
  run: string;
  task: string;
  to?: string;
  body?: string;
  code?: CodeOptions;
}

function modeOf(previous: attempts.AttemptRow | undefined): ExecutionMode {
  return previous?.mode ?? "analysis";
}

function definedOnly(code: CodeOptions | undefined): CodeOptions {
  return Object.fromEntries(Object.entries(code ?? {}).filter(([, v]) => v !== undefined));
}

/** A new attempt of a code task starts from the previous attempt's repository, root and base ref. */
function codeDefaults(previous: attempts.AttemptRow | undefined): CodeOptions | undefined {
  if (!previous?.repo_path) return undefined;
  return {
    repoPath: previous.repo_path,
    baseRef: previous.base_ref ?? undefined,
    workspaceRoot: previous.worktree_path ? workspaceRootOf(previous.worktree_path) : undefined,
  };
}

export function retryTask(dbPath: string, input: LeaderRetryInput, store: StoreOptions = {}): Promise<WithNotes<DispatchResult>> {
  return withWorkspace(
    dbPath,
    store,
    (db) => {
      const { previous } = attempts.checkRetry(db, input);
      return {
        mode: modeOf(previous),
        number: attempts.nextAttemptNumber(db, input.run, input.task),
        run: input.run,
        task: input.task,
        defaults: codeDefaults(previous),
      };
    },
    input.code,
    (db, workspace) => attempts.retry(db, { ...input, workspace }),
  );
}

export function reassignTask(
  dbPath: string,
  input: LeaderRetryInput & { to: string },
  store: StoreOptions = {},
): Promise<WithNotes<DispatchResult & { cancelled_attempt: attempts.Attempt }>> {
  return withWorkspace(
    dbPath,
    store,
    (db) => {
      const { active } = attempts.checkReassign(db, input);
      return {
        mode: active.mode,
        number: attempts.nextAttemptNumber(db, input.run, input.task),
        run: input.run,
        task: input.task,
        defaults: codeDefaults(active),
      };
    },
    input.code,
    (db, workspace) => attempts.reassign(db, { ...input, workspace }),
  );
}
