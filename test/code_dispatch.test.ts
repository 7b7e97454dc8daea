/**
 * Code mode through the real CLI (Node bundle) on real temporary git
 * repositories: a fresh worktree and branch per attempt from a committed
 * base, nothing half-made on failure, dirty main checkouts, concurrency.
 */
import { describe, expect, test } from "vitest";
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import * as path from "node:path";
import { fails, ok, run } from "./_helpers.ts";
import { commitFile, git, orchBranches, worktreeList, codeSetups, expectNothingMade } from "./code_fixtures.ts";

const { setup } = codeSetups();

describe("dispatch --execution-mode code", () => {
  test("happy path: worktree at the recorded path, on the recorded branch, at the base commit; main checkout stays clean", () => {
    const s = setup({ branch: "trunk" }); // a default branch that is not main
    const r = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code"));
    const a = r.attempt;
    expect(a.execution_mode).toBe("code");
    expect(a.repo_path).toBe(s.repo);
    expect(a.base_ref).toBe("trunk");
    expect(a.base_commit).toBe(s.head);
    expect(a.branch).toBe("orch/r1/T1/a1");
    expect(a.worktree_path).toBe(path.join(s.repo, ".orch", "worktrees", "r1", "T1-a1"));
    expect(path.isAbsolute(a.worktree_path)).toBe(true);
    expect(r.notes).toEqual([]);
    // git agrees
    expect(git(a.worktree_path, "rev-parse", "--abbrev-ref", "HEAD")).toBe(a.branch);
    expect(git(a.worktree_path, "rev-parse", "HEAD")).toBe(s.head);
    expect(realpathSync(git(a.worktree_path, "rev-parse", "--show-toplevel"))).toBe(a.worktree_path);
    expect(worktreeList(s.repo)).toEqual([{ path: s.repo, branch: "trunk" }, { path: a.worktree_path, branch: a.branch }]);
    // the workspace root is kept out of git status through the local exclude file, not a tracked file
    expect(git(s.repo, "status", "--porcelain", "--untracked-files=all")).toBe("");
    expect(readFileSync(path.join(s.repo, ".git", "info", "exclude"), "utf8")).toContain("/.orch/worktrees/");
    expect(existsSync(path.join(s.repo, ".gitignore"))).toBe(false);
    // the assignment carries the workspace for the worker
    expect(r.assignment.payload).toMatchObject({ execution_mode: "code", worktree_path: a.worktree_path, branch: a.branch, base_commit: s.head });
    // task show and status show the same fields
    expect(ok(s.cli.orch("task", "show", "--run", "r1", "--task", "T1")).attempts[0]).toMatchObject({ worktree_path: a.worktree_path, branch: a.branch });
    const st = ok(s.cli.orch("status", "--run", "r1"));
    expect(st.tasks[0].attempt).toMatchObject({ worktree_path: a.worktree_path, branch: a.branch, base_commit: s.head, worktree_dirty: false });
    // a change in the worktree shows as dirty in status
    writeFileSync(path.join(a.worktree_path, "scratch.txt"), "wip\n");
    expect(ok(s.cli.orch("status", "--run", "r1")).tasks[0].attempt.worktree_dirty).toBe(true);
  });

  test("status text lists worktrees; analysis attempts have worktree_dirty null", () => {
    const s = setup({ tasks: ["T1", "T2"] });
    const a = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code")).attempt;
    ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T2", "--execution-mode", "analysis"));
    const st = ok(s.cli.orch("status", "--run", "r1"));
    expect(st.tasks.map((t: any) => t.attempt.worktree_dirty)).toEqual([false, null]);
    const text = run(["--db", s.db, "status", "--run", "r1"], { cwd: s.repo }).stdout;
    expect(text).toContain(a.worktree_path);
    expect(text).toMatch(/T1 #1 .*\(orch\/r1\/T1\/a1\) clean/);
  });

  test("a missing base ref fails with git's words and leaves nothing", () => {
    const s = setup();
    const e = fails(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code", "--base-ref", "no-such-branch"), "not_found");
    expect(e.message).toContain("no-such-branch");
    expect(e.message).toMatch(/git said: .*(Needed a single revision|unknown revision)/);
    expectNothingMade(s);
    // the task is still ready: a good dispatch works afterwards
    ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code"));
  });

  test("a path that is not a git repository, or does not exist, is refused with nothing made", () => {
    const s = setup();
    const plain = path.join(s.dir, "plain dir");
    mkdirSync(plain);
    const e = fails(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code", "--repo-path", plain), "usage");
    expect(e.message).toContain("not inside a git checkout");
    expect(e.message).toMatch(/git said: .*not a git repository/);
    const e2 = fails(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code", "--repo-path", path.join(s.dir, "nope")), "not_found");
    expect(e2.message).toContain("does not exist");
    expectNothingMade(s);
  });

  test("a repository with no commits has no committed base", () => {
    const s = setup();
    const empty = path.join(s.dir, "empty");
    mkdirSync(empty);
    git(empty, "init", "-q", "-b", "main");
    const e = fails(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code", "--repo-path", empty), "not_found");
    expect(e.message).toContain("no commits yet");
    expect(ok(s.cli.orch("task", "show", "--run", "r1", "--task", "T1")).attempts).toEqual([]);
  });

  test("a dirty main checkout: dispatch works from the committed base and says the changes are not in the worktree", () => {
    const s = setup();
    writeFileSync(path.join(s.repo, "README.md"), "uncommitted edit\n");
    writeFileSync(path.join(s.repo, "new-file.txt"), "untracked\n");
    const r = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code"));
    expect(r.notes).toHaveLength(1);
    expect(r.notes[0]).toContain("uncommitted changes");
    expect(r.notes[0]).toContain("NOT in the worktree");
    expect(r.notes[0]).toContain("README.md");
    const wt = r.attempt.worktree_path;
    expect(readFileSync(path.join(wt, "README.md"), "utf8")).toBe("base\n");
    expect(existsSync(path.join(wt, "new-file.txt"))).toBe(false);
    expect(git(wt, "rev-parse", "HEAD")).toBe(s.head);
    // the main checkout's changes are untouched
    expect(readFileSync(path.join(s.repo, "README.md"), "utf8")).toBe("uncommitted edit\n");
    expect(git(s.repo, "status", "--porcelain")).toContain("README.md");
  });

  test("an existing worktree folder or branch is a conflict; the folder's content and the branch are untouched", () => {
    const s = setup({ tasks: ["T1", "T2"] });
    const folder = path.join(s.repo, ".orch", "worktrees", "r1", "T1-a1");
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, "precious.txt"), "keep me\n");
    const e = fails(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code"), "conflict");
    expect(e.message).toContain(folder);
    expect(readFileSync(path.join(folder, "precious.txt"), "utf8")).toBe("keep me\n");
    expect(orchBranches(s.repo)).toEqual([]);

    const other = commitFile(s.repo, "other.txt", "x\n");
    git(s.repo, "branch", "orch/r1/T2/a1", other);
    const e2 = fails(s.cli.orch("dispatch", "--run", "r1", "--task", "T2", "--execution-mode", "code"), "conflict");
    expect(e2.message).toContain("orch/r1/T2/a1");
    expect(git(s.repo, "rev-parse", "orch/r1/T2/a1")).toBe(other);
    expect(worktreeList(s.repo)).toHaveLength(1);
    expect(ok(s.cli.orch("task", "show", "--run", "r1", "--task", "T2")).attempts).toEqual([]);
  });

  test("a git failure after the branch was made rolls the branch back (git_failed says what git said)", () => {
    const s = setup();
    // a file where the workspace root should be: git cannot create the worktree's folders
    const blocker = path.join(s.dir, "not-a-dir");
    writeFileSync(blocker, "file\n");
    const e = fails(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code", "--workspace-root", blocker), "git_failed");
    expect(e.message).toMatch(/git worktree add .* failed: git said: .+/);
    expect(orchBranches(s.repo)).toEqual([]);
    expect(worktreeList(s.repo)).toHaveLength(1);
    expect(readFileSync(blocker, "utf8")).toBe("file\n");
    expect(ok(s.cli.orch("task", "show", "--run", "r1", "--task", "T1")).attempts).toEqual([]);
  });

  test("when the database write fails after the worktree was made (busy), the worktree and branch are removed again", () => {
    const s = setup();
    // a live holder of the write lock: this test process
    const lock = `${s.db}.lock`;
    writeFileSync(lock, JSON.stringify({ token: "held-by-test", pid: process.pid, host: hostname(), created_at: Date.now() }));
    const e = fails(s.cli.orch("--lock-timeout-ms", "300", "dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code"), "busy");
    expect(e.message).toMatch(/lock/);
    rmSync(lock);
    // the worktree step ran (it wrote the exclude line) before the write failed
    expect(readFileSync(path.join(s.repo, ".git", "info", "exclude"), "utf8")).toContain("/.orch/worktrees/");
    expectNothingMade(s);
    expect(existsSync(path.join(s.repo, ".orch", "worktrees", "r1"))).toBe(false);
    ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code"));
  });

  test("paths with spaces and non-ASCII characters work, with a relative workspace root outside the repo", () => {
    const s = setup({ repoName: path.join("my repo é", "ü ñ") });
    const r = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code", "--workspace-root", path.join("..", "wörk trees ✓")));
    const expected = path.join(path.dirname(s.repo), "wörk trees ✓", "r1", "T1-a1");
    expect(r.attempt.worktree_path).toBe(expected);
    expect(git(expected, "rev-parse", "--abbrev-ref", "HEAD")).toBe("orch/r1/T1/a1");
    expect(worktreeList(s.repo).map((w) => w.path)).toContain(expected);
    // the worker commits there; the main checkout's history is unchanged
    commitFile(expected, "wörk.txt", "done\n");
    expect(git(s.repo, "rev-parse", "HEAD")).toBe(s.head);
    expect(git(s.repo, "status", "--porcelain")).toBe("");
  });

  test("4 processes dispatching 4 code tasks at once get 4 distinct worktrees; git worktree list agrees", async () => {
    const tasks = ["T1", "T2", "T3", "T4"];
    const s = setup({ tasks });
    const results = await Promise.all(tasks.map((t) => s.cli.orchAsync("dispatch", "--run", "r1", "--task", t, "--execution-mode", "code")));
    const attempts = results.map((r) => ok(r).attempt);
    const paths = attempts.map((a) => a.worktree_path);
    expect(new Set(paths).size).toBe(4);
    expect(new Set(attempts.map((a) => a.branch)).size).toBe(4);
    const list = worktreeList(s.repo);
    expect(list).toHaveLength(5);
    for (const a of attempts) {
      expect(list).toContainEqual({ path: a.worktree_path, branch: a.branch });
      expect(git(a.worktree_path, "rev-parse", "HEAD")).toBe(s.head);
    }
    expect(git(s.repo, "worktree", "prune", "--dry-run", "-v")).toBe("");
    expect(git(s.repo, "status", "--porcelain", "--untracked-files=all")).toBe("");
  });

  test("two processes dispatching the same code task: exactly one wins, and the loser leaves the winner's worktree alone", async () => {
    const s = setup();
    const results = await Promise.all([0, 1].map(() => s.cli.orchAsync("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code")));
    const winners = results.filter((r) => r.json?.ok === true);
    const out = results.map((r) => r.stdout + r.stderr).join("\n");
    expect(winners, out).toHaveLength(1);
    const loser = results.find((r) => r.json?.ok !== true)!;
    expect(["conflict", "invalid_state", "not_ready"], out).toContain(loser.json?.error?.code);
    const a = winners[0]!.json.attempt;
    expect(git(a.worktree_path, "rev-parse", "--abbrev-ref", "HEAD")).toBe(a.branch);
    expect(worktreeList(s.repo)).toHaveLength(2);
    expect(orchBranches(s.repo)).toEqual([a.branch]);
  });
});
