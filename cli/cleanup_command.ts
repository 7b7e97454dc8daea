/** `orch cleanup`: remove the worktrees of finished or abandoned code attempts (lib/cleanup.ts). */
import type { Command } from "commander";
import { act } from "./main.ts";
import { type CommandResult, intOption } from "./_context.ts";
import { OrchError } from "../lib/errors.ts";
import { check, idSchema } from "../lib/validate.ts";
import type { CleanupResult } from "../lib/cleanup.ts";
import { bytes, paint } from "./_format.ts";

function renderCleanup(r: CleanupResult, deleteBranches: boolean): string {
  const verb = r.dry_run ? "would remove" : "removed";
  const lines: string[] = [];
  if (r.dry_run) lines.push(paint("yellow", "dry run: nothing was changed"));
  lines.push(`${verb} ${r.removed.length} worktree(s) of ${r.run_id}, ${bytes(r.bytes_freed)} ${r.dry_run ? "would be " : ""}freed`);
  for (const w of r.removed) {
    const what = w.missing ? "already deleted by hand; git's record pruned" : bytes(w.bytes);
    const branch = w.branch ? (w.branch_deleted ? `, branch ${w.branch} ${r.dry_run ? "would be " : ""}deleted` : `, branch ${w.branch} kept`) : "";
    lines.push(`  ${w.path}  (${w.task_id} attempt ${w.attempt_number}, ${what}${branch})`);
  }
  if (r.skipped.length > 0) {
    lines.push(`skipped ${r.skipped.length}:`);
    for (const s of r.skipped) lines.push(`  ${s.path ?? `attempt ${s.attempt_id}`}  (${s.task_id}, attempt id ${s.attempt_id}): ${s.reason}`);
  }
  for (const b of r.branches_deleted) lines.push(`branch ${b.branch} ${r.dry_run ? "would be " : ""}deleted (was ${b.commit.slice(0, 12)}; restore with: git branch ${b.branch} ${b.commit})`);
  for (const b of r.branches_kept) lines.push(`branch ${b.branch} kept: ${b.reason}`);
  if (!deleteBranches && r.removed.some((w) => w.branch)) lines.push("branches are kept; pass --delete-branches to delete those with no commits beyond their base");
  return lines.join("\n");
}

export function registerCleanup(program: Command): void {
  act(
    program.command("cleanup").description("remove the git worktrees of finished or abandoned code attempts (never an active one)")
      .option("--run <id>", "the run")
      .option("--all-completed", "every done, failed or cancelled attempt of the run")
      .option("--task <id>", "the finished attempts of one task")
      .option("--attempt <id>", "one attempt, by attempt id (see `orch task show`)")
      .option("--force", "also remove worktrees with uncommitted changes; with --delete-branches, also delete branches with commits not in their base")
      .option("--delete-branches", "also delete the attempts' branches (only those with no commits beyond their base, unless --force)")
      .option("--dry-run", "report what would be removed; change nothing")
      .addHelpText("after", `
Give exactly one of --all-completed, --task or --attempt. Only attempts that
are done, failed or cancelled are touched; an active attempt's worktree is
skipped. For each worktree:
  - uncommitted changes (tracked or untracked) -> skipped, unless --force
    (files git ignores, such as build output, do not count and are removed)
  - folder deleted by hand                     -> git's record pruned, reported as missing
  - not a registered worktree of its repo      -> skipped, left alone
Then \`git worktree prune\` runs in each repository touched. Branches stay unless
--delete-branches; a branch with commits not in the attempt's base commit stays
unless --force too, and a branch checked out somewhere stays always. Each
removal is recorded on the attempt (worktree_removed_at) with a
worktree_removed event. Running cleanup twice is harmless.

Output (--json): {"ok": true, "run_id", "dry_run": bool,
  "removed": [{"attempt_id", "task_id", "attempt_number", "path", "branch", "bytes", "missing", "branch_deleted"}],
  "skipped": [{"attempt_id", "task_id", "path", "reason"}],
  "branches_deleted": [{"attempt_id", "branch", "commit"}],
  "branches_kept": [{"attempt_id", "branch", "reason"}],
  "bytes_freed": N, "pruned": [REPO...]}
  "bytes" is measured before removal. With --dry-run the lists say what would happen.

Errors: usage (no selector, or more than one), not_found (run, task or attempt),
  busy (database locked), git_failed (git missing).

Example:
  orch --db ./coord.db --json cleanup --run blog_mvp_001 --all-completed --delete-branches --dry-run`),
    async (o, ctx): Promise<CommandResult> => {
      if (o.run === undefined) throw new OrchError("usage", "missing required flag --run", { hint: "see --help" });
      const input = {
        run: check(idSchema("--run"), o.run, "--run"),
        allCompleted: o.allCompleted === true,
        task: o.task === undefined ? undefined : check(idSchema("--task"), o.task, "--task"),
        attempt: intOption(o.attempt, "--attempt", 1, Number.MAX_SAFE_INTEGER),
        force: o.force === true,
        deleteBranches: o.deleteBranches === true,
        dryRun: o.dryRun === true,
      };
      // loaded on demand: only cleanup and code mode need git (and dax)
      const { cleanup } = await import("../lib/cleanup.ts");
      const r = await cleanup(ctx.dbPath, input, ctx.store);
      return { data: { ...r }, text: renderCleanup(r, input.deleteBranches) };
    },
  );
}
