/**
 * `cleanup`: removes the worktrees of finished or abandoned code attempts and
 * prunes git's records of them, without ever losing work. A worktree with
 * uncommitted changes stays unless forced; a branch stays unless asked, and a
 * branch with commits beyond its base stays unless also forced. The git work
 * happens first; the attempts are then marked in one write transaction.
 * Running it twice is harmless: the second run finds nothing left to do.
 */
import type { Db } from "./sqlite.ts";
import * as rt from "./_runtime.ts";
import { OrchError } from "./errors.ts";
import { appendEvent } from "./events.ts";
import { type AttemptRow, getAttemptRow, listAttemptRows } from "./attempts.ts";
import { getRun } from "./runs.ts";
import { getTaskRow, isActive } from "./tasks.ts";
import { readReconciled } from "./reconcile.ts";
import { type StoreOptions, writeTransaction } from "./storage.ts";
import { isoTime } from "./_time.ts";
import { git, gitSaid, uncommittedChanges, workspaceRootOf } from "./worktrees.ts";

export interface CleanupInput {
  run: string;
  /** Exactly one of allCompleted, task, attempt. */
  allCompleted?: boolean;
  task?: string;
  attempt?: number;
  /** Remove worktrees with uncommitted changes; with deleteBranches, delete branches with unmerged commits. */
  force?: boolean;
  deleteBranches?: boolean;
  dryRun?: boolean;
}

export interface RemovedWorktree {
  attempt_id: number;
  task_id: string;
  attempt_number: number;
  path: string;
  branch: string | null;
  /** Bytes on disk before removal (0 when the folder was already gone). */
  bytes: number;
  /** The folder had been deleted by hand; only git's records were pruned. */
  missing: boolean;
  branch_deleted: boolean;
}

export interface SkippedWorktree {
  attempt_id: number;
  task_id: string;
  path: string | null;
  reason: string;
}

export interface BranchDeleted {
  attempt_id: number;
  branch: string;
  /** The commit it pointed at: `git branch NAME COMMIT` brings it back. */
  commit: string;
}

export interface BranchKept {
  attempt_id: number;
  branch: string;
  reason: string;
}

export interface CleanupResult {
  run_id: string;
  dry_run: boolean;
  removed: RemovedWorktree[];
  skipped: SkippedWorktree[];
  branches_deleted: BranchDeleted[];
  branches_kept: BranchKept[];
  bytes_freed: number;
  /** Repositories where `git worktree prune` ran. */
  pruned: string[];
}

/** The attempts the selector names, checked against the run. */
function selectAttempts(db: Db, input: CleanupInput): AttemptRow[] {
  getRun(db, input.run);
  if (input.attempt !== undefined) {
    const row = db.get<AttemptRow>("SELECT * FROM attempts WHERE id = ?", [input.attempt]);
    if (!row || row.run_id !== input.run) {
      throw new OrchError("not_found", `attempt ${input.attempt} is not an attempt of run ${input.run}`, {
        hint: `attempt ids are in \`orch task show --run ${input.run} --task ID\``,
      });
    }
    return [getAttemptRow(db, row.id)];
  }
  if (input.task !== undefined) {
    getTaskRow(db, input.run, input.task);
    return listAttemptRows(db, input.run, input.task);
  }
  return listAttemptRows(db, input.run);
}

/** Compares paths the way the file system does (case-insensitive on Windows and macOS by default). */
function samePath(a: string, b: string): boolean {
  const norm = (p: string) => {
    let r = rt.path.resolve(p);
    try {
      r = rt.realpath(r);
    } catch {
      // missing: compare as given
    }
    return rt.platform === "win32" || rt.platform === "darwin" ? r.toLowerCase() : r;
  };
  return norm(a) === norm(b);
}

interface WorktreeEntry {
  path: string;
  branch?: string;
  locked: boolean;
  prunable: boolean;
}

/** `git worktree list --porcelain -z` of a repository. */
async function listWorktrees(repo: string): Promise<WorktreeEntry[] | null> {
  let r = await git(["-C", repo, "worktree", "list", "--porcelain", "-z"]);
  let sep = "\0";
  if (r.code !== 0) {
    // git before 2.36 has no -z; orch's own paths never hold a line break
    r = await git(["-C", repo, "worktree", "list", "--porcelain"]);
    sep = "\n";
  }
  if (r.code !== 0) return null;
  const entries: WorktreeEntry[] = [];
  let cur: WorktreeEntry | undefined;
  for (const field of r.stdout.split(sep)) {
    if (field.startsWith("worktree ")) {
      cur = { path: field.slice("worktree ".length), locked: false, prunable: false };
      entries.push(cur);
    } else if (cur && field.startsWith("branch ")) cur.branch = field.slice("branch ".length);
    else if (cur && (field === "locked" || field.startsWith("locked "))) cur.locked = true;
    else if (cur && (field === "prunable" || field.startsWith("prunable "))) cur.prunable = true;
  }
  return entries;
}

function describeChanges(changes: { code: string; path: string }[]): string {
  const sample = changes.slice(0, 3).map((c) => c.path).join(", ");
  return `${changes.length} uncommitted change(s): ${sample}${changes.length > 3 ? ", ..." : ""}`;
}

interface Plan {
  row: AttemptRow;
  /** The worktree is gone (now or earlier); its branch may be deleted. */
  gone: boolean;
  removed?: RemovedWorktree;
}

/** Removes worktrees and (if asked) branches. Git first; then one transaction records what went. */
export async function cleanup(dbPath: string, input: CleanupInput, store: StoreOptions = {}): Promise<CleanupResult> {
  const selectors = [input.allCompleted === true, input.task !== undefined, input.attempt !== undefined].filter(Boolean).length;
  if (selectors !== 1) {
    throw new OrchError("usage", "give exactly one of --all-completed, --task ID or --attempt ID", {
      hint: `e.g. orch cleanup --run ${input.run} --all-completed --dry-run`,
    });
  }
  const rows = await readReconciled(dbPath, input.run, (db) => selectAttempts(db, input), store);
  const dryRun = input.dryRun === true;
  const plans: Plan[] = [];
  const result: CleanupResult = { run_id: input.run, dry_run: dryRun, removed: [], skipped: [], branches_deleted: [], branches_kept: [], bytes_freed: 0, pruned: [] };
  const skip = (row: AttemptRow, reason: string) => result.skipped.push({ attempt_id: row.id, task_id: row.task_id, path: row.worktree_path, reason });
  /** A finished attempt whose worktree stays: with --delete-branches, its branch is reported as kept. */
  const keepTree = (row: AttemptRow, reason: string) => {
    skip(row, reason);
    plans.push({ row, gone: false });
  };

  const gone = (row: AttemptRow, bytes: number, missing: boolean) => {
    const removed: RemovedWorktree = {
      attempt_id: row.id,
      task_id: row.task_id,
      attempt_number: row.number,
      path: row.worktree_path!,
      branch: row.branch,
      bytes,
      missing,
      branch_deleted: false,
    };
    result.removed.push(removed);
    result.bytes_freed += bytes;
    plans.push({ row, gone: true, removed });
  };

  const worktreeLists = new Map<string, WorktreeEntry[] | null>();
  const listOf = async (repo: string) => {
    if (!worktreeLists.has(repo)) worktreeLists.set(repo, await listWorktrees(repo));
    return worktreeLists.get(repo)!;
  };

  for (const row of rows) {
    if (!row.worktree_path || !row.repo_path) {
      // analysis attempts have nothing to clean; name them only when asked for explicitly
      if (input.attempt !== undefined) skip(row, "analysis attempt: it has no worktree");
      continue;
    }
    if (isActive(row.status)) {
      skip(row, `attempt is still ${row.status}: its worker may be using the worktree (cancel or finish it first)`);
      continue;
    }
    if (row.worktree_removed_at !== null) {
      skip(row, `worktree already removed at ${isoTime(row.worktree_removed_at)}`);
      plans.push({ row, gone: true });
      continue;
    }
    if (!rt.statOrNull(row.worktree_path)) {
      // deleted by hand: nothing to measure; prune drops git's record of it
      gone(row, 0, true);
      continue;
    }
    if (rt.statOrNull(row.repo_path)?.isDirectory() !== true) {
      keepTree(row, `its repository ${row.repo_path} no longer exists, so git cannot vouch for this folder; remove it by hand if it holds nothing you need`);
      continue;
    }
    const list = await listOf(row.repo_path);
    if (!list?.some((w) => samePath(w.path, row.worktree_path!))) {
      keepTree(row, `${row.worktree_path} is not a registered worktree of ${row.repo_path}; left alone (remove it by hand if you are sure)`);
      continue;
    }
    const changes = await uncommittedChanges(row.worktree_path);
    if (changes === null) {
      keepTree(row, "git cannot read this worktree's status; left alone");
      continue;
    }
    if (changes.length > 0 && input.force !== true) {
      keepTree(row, `it has ${describeChanges(changes)}; commit them, or pass --force to discard them`);
      continue;
    }
    const bytes = rt.diskUsage(row.worktree_path);
    if (!dryRun) {
      const args = ["-C", row.repo_path, "worktree", "remove", ...(input.force === true ? ["--force"] : []), "--", row.worktree_path];
      const r = await git(args);
      if (r.code !== 0) {
        keepTree(row, `git worktree remove failed: git said: ${gitSaid(r)}`);
        continue;
      }
      removeEmptyParent(row.worktree_path);
    }
    gone(row, bytes, false);
  }

  // git forgets worktrees whose folders are gone (removed above or deleted by hand)
  if (!dryRun) {
    const repos = new Set(result.removed.map((r) => rows.find((a) => a.id === r.attempt_id)!.repo_path!));
    for (const repo of repos) {
      if (!rt.statOrNull(repo)?.isDirectory()) continue;
      const r = await git(["-C", repo, "worktree", "prune"]);
      if (r.code === 0) result.pruned.push(repo);
    }
    worktreeLists.clear();
  }

  if (input.deleteBranches === true) {
    for (const p of plans) await decideBranch(p, input, result, listOf);
  }

  if (!dryRun && result.removed.length > 0) {
    const now = rt.now();
    await writeTransaction(dbPath, (db) => {
      for (const r of result.removed) {
        const row = getAttemptRow(db, r.attempt_id);
        const changed = db.run("UPDATE attempts SET worktree_removed_at = ? WHERE id = ? AND worktree_removed_at IS NULL", [now, r.attempt_id]);
        if (changed === 0) continue; // another cleanup recorded it first
        appendEvent(db, {
          run_id: row.run_id,
          type: "worktree_removed",
          task_id: row.task_id,
          attempt_id: row.id,
          thread_id: row.thread_id,
          actor: "leader",
          data: { path: r.path, branch: r.branch, bytes: r.bytes, missing: r.missing, branch_deleted: r.branch_deleted },
        });
      }
    }, store);
  }
  return result;
}

function removeEmptyParent(worktreePath: string): void {
  const parent = rt.path.dirname(worktreePath);
  if (parent === workspaceRootOf(worktreePath)) return;
  try {
    // the run's folder goes once its last worktree has gone
    if (rt.readdir(parent).length === 0) rt.rmdir(parent);
  } catch {
    // a dispatch may be creating a sibling right now: leave the folder
  }
}

/** Deletes an attempt's branch if that loses no work, or says why it stays. */
async function decideBranch(
  p: Plan,
  input: CleanupInput,
  result: CleanupResult,
  listOf: (repo: string) => Promise<WorktreeEntry[] | null>,
): Promise<void> {
  const { row } = p;
  if (!row.branch || !row.repo_path) return;
  const keep = (reason: string): void => void result.branches_kept.push({ attempt_id: row.id, branch: row.branch!, reason });
  if (!p.gone) return keep("its worktree was kept");
  if (!rt.statOrNull(row.repo_path)?.isDirectory()) return keep(`its repository ${row.repo_path} no longer exists`);
  const ref = `refs/heads/${row.branch}`;
  const head = await git(["-C", row.repo_path, "rev-parse", "--verify", "--quiet", "--end-of-options", ref]);
  if (head.code !== 0) return; // already deleted: nothing to report
  const commit = head.stdout.trim();
  const holder = (await listOf(row.repo_path))?.find((w) => w.branch === ref && !(input.dryRun && p.removed && samePath(w.path, row.worktree_path!)));
  if (holder) return keep(`it is checked out in the worktree ${holder.path}`);
  const count = await git(["-C", row.repo_path, "rev-list", "--count", "--end-of-options", `${row.base_commit}..${commit}`]);
  const ahead = count.code === 0 ? Number(count.stdout.trim()) : NaN;
  if (input.force !== true) {
    if (Number.isNaN(ahead)) return keep(`cannot compare it with its base ${row.base_commit} (git said: ${gitSaid(count)}); pass --force to delete it anyway`);
    if (ahead > 0) {
      // the rule stays strict (the base, not other branches, decides), but say where the commits already are
      const on = await git(["-C", row.repo_path, "for-each-ref", "--format=%(refname:short)", "--contains", commit, "refs/heads/"]);
      const others = on.code === 0 ? on.stdout.split("\n").map((l) => l.trim()).filter((b) => b && b !== row.branch) : [];
      return keep(
        `it has ${ahead} commit(s) not in its base ${row.base_commit?.slice(0, 12)} (see: git log ${row.base_commit?.slice(0, 12)}..${row.branch}); ` +
          (others.length > 0
            ? `they are also on ${others.slice(0, 3).join(", ")}${others.length > 3 ? ", ..." : ""}, so --force with --delete-branches loses nothing`
            : "merge them, or pass --force with --delete-branches to delete it anyway"),
      );
    }
  }
  if (!input.dryRun) {
    // the expected old value makes this refuse if a commit landed since the check
    const del = await git(["-C", row.repo_path, "update-ref", "-m", "orch cleanup", "-d", "--", ref, commit]);
    if (del.code !== 0) return keep(`git update-ref -d failed: git said: ${gitSaid(del)}`);
  }
  result.branches_deleted.push({ attempt_id: row.id, branch: row.branch, commit });
  if (p.removed) p.removed.branch_deleted = true;
}
