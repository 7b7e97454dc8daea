/**
 * Code mode's happy path and cleanup under every runtime: the Node bundle,
 * Deno running mod.ts, and the compiled binary (dax spawns git in each).
 */
import { afterEach, describe, expect, test } from "vitest";
import { existsSync } from "node:fs";
import * as path from "node:path";
import { ok, RUNTIMES } from "./_helpers.ts";
import { claim, codeSetup, commitFile, git, orchBranches, worktreeList } from "./code_fixtures.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe("code mode under every runtime", () => {
  for (const runtime of RUNTIMES) {
    test(`dispatch makes a worktree, the worker commits, cleanup removes it (${runtime})`, () => {
      const s = codeSetup({ runtime, tasks: ["T1", "T2"], repoName: "repo ä b" });
      cleanups.push(s.cleanup);
      const a = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code")).attempt;
      expect(a.worktree_path).toBe(path.join(s.repo, ".orch", "worktrees", "r1", "T1-a1"));
      expect(a.base_commit).toBe(s.head);
      expect(git(a.worktree_path, "rev-parse", "--abbrev-ref", "HEAD")).toBe("orch/r1/T1/a1");
      expect(git(a.worktree_path, "rev-parse", "HEAD")).toBe(s.head);
      expect(ok(s.cli.orch("status", "--run", "r1")).tasks[0].attempt.worktree_dirty).toBe(false);

      // T2: merged work (no commits beyond base) so its branch may go; T1: a commit, so it stays
      const b = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T2", "--execution-mode", "code")).attempt;
      const work = commitFile(a.worktree_path, "work.txt", "done\n");
      ok(s.cli.inbox("done", "--token", claim(s.cli, a.thread_id), "--body", "committed"));
      ok(s.cli.inbox("done", "--token", claim(s.cli, b.thread_id), "--body", "nothing needed"));

      const r = ok(s.cli.orch("cleanup", "--run", "r1", "--all-completed", "--delete-branches"));
      expect(r.removed.map((x: any) => x.task_id).sort()).toEqual(["T1", "T2"]);
      expect(r.bytes_freed).toBeGreaterThan(0);
      expect(r.branches_deleted.map((x: any) => x.branch)).toEqual(["orch/r1/T2/a1"]);
      expect(r.branches_kept.map((x: any) => x.branch)).toEqual(["orch/r1/T1/a1"]);
      expect(existsSync(a.worktree_path)).toBe(false);
      expect(existsSync(b.worktree_path)).toBe(false);
      expect(worktreeList(s.repo).map((w) => w.path)).toEqual([s.repo]);
      expect(orchBranches(s.repo)).toEqual(["orch/r1/T1/a1"]);
      expect(git(s.repo, "rev-parse", "orch/r1/T1/a1")).toBe(work);
      expect(ok(s.cli.orch("cleanup", "--run", "r1", "--all-completed")).removed).toEqual([]);
    });
  }
});
