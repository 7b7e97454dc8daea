/**
 * `orch cleanup` through the real CLI (Node bundle) on real temporary git
 * repositories: clean, dirty (refused, then forced), hand-deleted and active
 * worktrees; branch deletion rules; dry runs; running it twice.
 */
import { afterEach, describe, expect, test } from "vitest";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fails, ok, run } from "./_helpers.ts";
import { claim, codeSetup, commitFile, git, gitCode, orchBranches, worktreeList } from "./code_fixtures.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

/**
 * T1 done and clean, T2 done with an untracked file, T3 failed and its folder
 * deleted by hand, T4 still running, T5 done with a commit on its branch.
 */
function scenario() {
  const s = codeSetup({ tasks: ["T1", "T2", "T3", "T4", "T5"] });
  cleanups.push(s.cleanup);
  // a user setting that hides untracked files from plain `git status` must not hide work from cleanup
  git(s.repo, "config", "status.showUntrackedFiles", "no");
  const a: Record<string, any> = {};
  const tokens: Record<string, string> = {};
  for (const t of ["T1", "T2", "T3", "T4", "T5"]) {
    a[t] = ok(s.cli.orch("dispatch", "--run", "r1", "--task", t, "--execution-mode", "code")).attempt;
    tokens[t] = claim(s.cli, a[t].thread_id);
  }
  ok(s.cli.inbox("done", "--token", tokens.T1!, "--body", "nothing to change"));
  writeFileSync(path.join(a.T2.worktree_path, "notes.txt"), "uncommitted work\n");
  ok(s.cli.inbox("done", "--token", tokens.T2!, "--body", "done, forgot to commit"));
  ok(s.cli.inbox("fail", "--token", tokens.T3!, "--body", "gave up"));
  rmSync(a.T3.worktree_path, { recursive: true, force: true });
  const t5commit = commitFile(a.T5.worktree_path, "feature.txt", "feature\n");
  ok(s.cli.inbox("done", "--token", tokens.T5!, "--body", "committed"));
  return { ...s, a, t5commit };
}

function events(s: ReturnType<typeof scenario>) {
  return ok(s.cli.orch("wait", "--run", "r1", "--after-event", "0", "--for", "worktree_removed", "--timeout-seconds", "0")).events;
}

const byAttempt = (list: any[], id: number) => list.find((x) => x.attempt_id === id);

describe("orch cleanup", () => {
  test("removes finished clean worktrees, handles hand-deleted ones, refuses dirty and active ones; twice is harmless", () => {
    const s = scenario();
    const { a } = s;

    // a dry run reports and changes nothing
    const dry = ok(s.cli.orch("cleanup", "--run", "r1", "--all-completed", "--dry-run"));
    expect(dry.dry_run).toBe(true);
    expect(dry.removed.map((r: any) => r.task_id).sort()).toEqual(["T1", "T3", "T5"]);
    expect(dry.bytes_freed).toBeGreaterThan(0);
    expect(existsSync(a.T1.worktree_path)).toBe(true);
    expect(worktreeList(s.repo)).toHaveLength(6);
    expect(events(s)).toEqual([]);

    const r = ok(s.cli.orch("cleanup", "--run", "r1", "--all-completed"));
    expect(r.dry_run).toBe(false);
    expect(r.removed.map((x: any) => x.task_id).sort()).toEqual(["T1", "T3", "T5"]);
    const t1 = byAttempt(r.removed, a.T1.id);
    expect(t1).toMatchObject({ task_id: "T1", path: a.T1.worktree_path, branch: "orch/r1/T1/a1", missing: false, branch_deleted: false });
    expect(t1.bytes).toBeGreaterThan(0);
    expect(byAttempt(r.removed, a.T3.id)).toMatchObject({ missing: true, bytes: 0 });
    expect(r.bytes_freed).toBe(r.removed.reduce((n: number, x: any) => n + x.bytes, 0));
    expect(r.bytes_freed).toBe(dry.bytes_freed);
    expect(byAttempt(r.skipped, a.T2.id).reason).toMatch(/uncommitted change.*notes\.txt.*--force/);
    expect(byAttempt(r.skipped, a.T4.id).reason).toMatch(/still running/);
    expect(r.pruned).toEqual([s.repo]);
    // on disk and in git
    expect(existsSync(a.T1.worktree_path)).toBe(false);
    expect(existsSync(a.T5.worktree_path)).toBe(false);
    expect(existsSync(path.join(a.T2.worktree_path, "notes.txt"))).toBe(true);
    expect(existsSync(a.T4.worktree_path)).toBe(true);
    expect(worktreeList(s.repo).map((w) => w.path).sort()).toEqual([s.repo, a.T2.worktree_path, a.T4.worktree_path].sort());
    // branches are kept by default
    expect(orchBranches(s.repo)).toHaveLength(5);
    expect(git(s.repo, "rev-parse", "orch/r1/T5/a1")).toBe(s.t5commit);
    // recorded on the attempts, one event each
    const shown = ok(s.cli.orch("task", "show", "--run", "r1", "--task", "T1")).attempts[0];
    expect(shown.worktree_removed_at).toMatch(/^\d{4}-/);
    expect(ok(s.cli.orch("task", "show", "--run", "r1", "--task", "T2")).attempts[0].worktree_removed_at).toBeNull();
    const ev = events(s);
    expect(ev.map((e: any) => e.task_id).sort()).toEqual(["T1", "T3", "T5"]);
    expect(ev.find((e: any) => e.task_id === "T3").data).toMatchObject({ missing: true, path: a.T3.worktree_path });
    // status no longer lists removed worktrees as live
    const st = ok(s.cli.orch("status", "--run", "r1"));
    expect(st.tasks.find((t: any) => t.id === "T2").attempt.worktree_dirty).toBe(true);
    expect(st.tasks.find((t: any) => t.id === "T1").attempt.worktree_dirty).toBeNull();

    // twice is harmless
    const again = ok(s.cli.orch("cleanup", "--run", "r1", "--all-completed"));
    expect(again.removed).toEqual([]);
    expect(again.bytes_freed).toBe(0);
    expect(byAttempt(again.skipped, a.T1.id).reason).toMatch(/already removed/);
    expect(events(s)).toHaveLength(3);

    // the dirty one: refused by --task, removed with --force
    const refused = ok(s.cli.orch("cleanup", "--run", "r1", "--task", "T2"));
    expect(refused.removed).toEqual([]);
    expect(refused.skipped[0].reason).toMatch(/uncommitted/);
    expect(existsSync(path.join(a.T2.worktree_path, "notes.txt"))).toBe(true);
    const forced = ok(s.cli.orch("cleanup", "--run", "r1", "--task", "T2", "--force"));
    expect(forced.removed.map((x: any) => x.task_id)).toEqual(["T2"]);
    expect(existsSync(a.T2.worktree_path)).toBe(false);

    // the active one, named by attempt id: never removed, even with --force
    const active = ok(s.cli.orch("cleanup", "--run", "r1", "--attempt", String(a.T4.id), "--force"));
    expect(active.removed).toEqual([]);
    expect(active.skipped[0]).toMatchObject({ attempt_id: a.T4.id, path: a.T4.worktree_path });
    expect(existsSync(a.T4.worktree_path)).toBe(true);
    expect(git(s.repo, "worktree", "list")).toContain(a.T4.worktree_path);
  });

  test("branch deletion: only with --delete-branches; a branch with commits beyond its base needs --force too", () => {
    const s = scenario();
    const { a } = s;
    // T1 (no commits) and T5 (one commit) are done; T3 failed (no commits, folder gone)
    const r = ok(s.cli.orch("cleanup", "--run", "r1", "--all-completed", "--delete-branches"));
    expect(r.branches_deleted.map((b: any) => b.branch).sort()).toEqual(["orch/r1/T1/a1", "orch/r1/T3/a1"]);
    expect(byAttempt(r.branches_deleted, a.T1.id).commit).toBe(s.head);
    expect(byAttempt(r.removed, a.T1.id).branch_deleted).toBe(true);
    expect(byAttempt(r.removed, a.T5.id).branch_deleted).toBe(false);
    expect(byAttempt(r.branches_kept, a.T5.id).reason).toMatch(/1 commit\(s\) not in its base/);
    // T2's worktree was kept (dirty), so its branch stays
    expect(byAttempt(r.branches_kept, a.T2.id).reason).toMatch(/worktree was kept/);
    // T4 is active: neither worktree nor branch is touched
    expect(byAttempt(r.branches_kept, a.T4.id)).toBeUndefined();
    expect(orchBranches(s.repo).sort()).toEqual(["orch/r1/T2/a1", "orch/r1/T4/a1", "orch/r1/T5/a1"]);
    expect(git(s.repo, "rev-parse", "orch/r1/T5/a1")).toBe(s.t5commit);

    // once merged, the reason says where the commits are; the rule still wants --force
    git(s.repo, "merge", "-q", "--ff-only", "orch/r1/T5/a1");
    const merged = ok(s.cli.orch("cleanup", "--run", "r1", "--task", "T5", "--delete-branches"));
    expect(merged.branches_deleted).toEqual([]);
    expect(merged.branches_kept[0].reason).toMatch(/also on main/);

    // a dry run with --force says it would delete T5's branch, and does not
    const dry = ok(s.cli.orch("cleanup", "--run", "r1", "--task", "T5", "--delete-branches", "--force", "--dry-run"));
    expect(dry.branches_deleted).toEqual([{ attempt_id: a.T5.id, branch: "orch/r1/T5/a1", commit: s.t5commit }]);
    expect(gitCode(s.repo, "rev-parse", "--verify", "--quiet", "refs/heads/orch/r1/T5/a1")).toBe(0);

    // --force with --delete-branches deletes it (worktree already removed) and reports the commit to restore it
    const forced = ok(s.cli.orch("cleanup", "--run", "r1", "--task", "T5", "--delete-branches", "--force"));
    expect(forced.removed).toEqual([]);
    expect(forced.branches_deleted).toEqual([{ attempt_id: a.T5.id, branch: "orch/r1/T5/a1", commit: s.t5commit }]);
    expect(orchBranches(s.repo)).not.toContain("orch/r1/T5/a1");
    // the commit still exists for `git branch NAME COMMIT`
    expect(gitCode(s.repo, "cat-file", "-e", `${s.t5commit}^{commit}`)).toBe(0);

    // a branch checked out elsewhere is never deleted
    const t2 = a.T2.worktree_path;
    ok(s.cli.orch("cleanup", "--run", "r1", "--task", "T2", "--force"));
    const elsewhere = path.join(s.dir, "elsewhere");
    git(s.repo, "worktree", "add", "-q", elsewhere, "orch/r1/T2/a1");
    const held = ok(s.cli.orch("cleanup", "--run", "r1", "--task", "T2", "--delete-branches", "--force"));
    expect(held.branches_kept[0].reason).toMatch(/checked out in the worktree/);
    expect(orchBranches(s.repo)).toContain("orch/r1/T2/a1");
    expect(existsSync(t2)).toBe(false);
  });

  test("a folder at the recorded path that git does not know as a worktree is left alone", () => {
    const s = codeSetup();
    cleanups.push(s.cleanup);
    const a = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code")).attempt;
    ok(s.cli.inbox("done", "--token", claim(s.cli, a.thread_id), "--body", "ok"));
    // someone replaced the worktree with an ordinary folder of their own
    rmSync(a.worktree_path, { recursive: true, force: true });
    git(s.repo, "worktree", "prune");
    mkdirSync(a.worktree_path, { recursive: true });
    writeFileSync(path.join(a.worktree_path, "mine.txt"), "not orch's\n");
    const r = ok(s.cli.orch("cleanup", "--run", "r1", "--all-completed", "--force"));
    expect(r.removed).toEqual([]);
    expect(r.skipped[0].reason).toMatch(/not a registered worktree/);
    expect(existsSync(path.join(a.worktree_path, "mine.txt"))).toBe(true);
  });

  test("usage: exactly one selector; unknown run, task or attempt", () => {
    const s = codeSetup({ tasks: ["T1"] });
    cleanups.push(s.cleanup);
    fails(s.cli.orch("cleanup", "--run", "r1"), "usage");
    fails(s.cli.orch("cleanup", "--run", "r1", "--all-completed", "--task", "T1"), "usage");
    fails(s.cli.orch("cleanup", "--all-completed"), "usage");
    fails(s.cli.orch("cleanup", "--run", "nope", "--all-completed"), "not_found");
    fails(s.cli.orch("cleanup", "--run", "r1", "--task", "T9"), "not_found");
    fails(s.cli.orch("cleanup", "--run", "r1", "--attempt", "99"), "not_found");
    fails(s.cli.orch("cleanup", "--run", "r1", "--attempt", "x"), "usage");
    // an analysis attempt has nothing to clean
    const an = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "analysis")).attempt;
    const r = ok(s.cli.orch("cleanup", "--run", "r1", "--attempt", String(an.id)));
    expect(r.skipped[0].reason).toMatch(/analysis attempt/);
    const help = run(["cleanup", "--help"]);
    expect(help.stdout).toContain("Output (--json)");
    expect(help.stdout).toContain("--delete-branches");
  });
});
