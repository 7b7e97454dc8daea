/**
 * Code mode through the real CLI (Node bundle): retry and reassign get fresh
 * worktrees; ids, refs and paths can neither escape the workspace root nor be
 * read by git as options (also checked on the library function, for NUL).
 */
import { describe, expect, test } from "vitest";
import { createWorkspace } from "../lib/worktrees.ts";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { fails, ok, ROOT, tempDir } from "./_helpers.ts";
import { claim, commitFile, git, gitCode, makeRepo, orchBranches, worktreeList, codeSetups, expectNothingMade } from "./code_fixtures.ts";

const { setup, later } = codeSetups();

describe("retry and reassign in code mode", () => {
  test("retry gets a fresh branch and worktree; the previous attempt's branch and commits are kept", () => {
    const s = setup();
    const a1 = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code")).attempt;
    const token = claim(s.cli, a1.thread_id);
    const work = commitFile(a1.worktree_path, "attempt1.txt", "first try\n");
    ok(s.cli.inbox("fail", "--token", token, "--body", "tests fail"));
    const r2 = ok(s.cli.orch("retry", "--run", "r1", "--task", "T1"));
    const a2 = r2.attempt;
    expect(a2.number).toBe(2);
    expect(a2.execution_mode).toBe("code");
    expect(a2.branch).toBe("orch/r1/T1/a2");
    expect(a2.worktree_path).toBe(path.join(s.repo, ".orch", "worktrees", "r1", "T1-a2"));
    expect(a2.worktree_path).not.toBe(a1.worktree_path);
    expect(a2.repo_path).toBe(a1.repo_path);
    expect(a2.base_ref).toBe("main");
    // fresh from the base, not from the failed attempt's work
    expect(git(a2.worktree_path, "rev-parse", "HEAD")).toBe(s.head);
    expect(existsSync(path.join(a2.worktree_path, "attempt1.txt"))).toBe(false);
    // the old branch and worktree are kept
    expect(git(s.repo, "rev-parse", "orch/r1/T1/a1")).toBe(work);
    expect(worktreeList(s.repo).map((w) => w.branch)).toEqual(["main", "orch/r1/T1/a1", "orch/r1/T1/a2"]);
  });

  test("retry with a new --base-ref branches from it; reassign also gets a fresh worktree", () => {
    const s = setup({ tasks: ["T1", "T2"] });
    const a1 = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code")).attempt;
    ok(s.cli.inbox("fail", "--token", claim(s.cli, a1.thread_id), "--body", "needs the fix first"));
    git(s.repo, "checkout", "-q", "-b", "fix");
    const fix = commitFile(s.repo, "fix.txt", "fix\n");
    git(s.repo, "checkout", "-q", "main");
    const a2 = ok(s.cli.orch("retry", "--run", "r1", "--task", "T1", "--base-ref", "fix")).attempt;
    expect(a2.base_ref).toBe("fix");
    expect(a2.base_commit).toBe(fix);
    expect(git(a2.worktree_path, "rev-parse", "HEAD")).toBe(fix);

    const b1 = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T2", "--execution-mode", "code")).attempt;
    const r = ok(s.cli.orch("reassign", "--run", "r1", "--task", "T2", "--to", "w2"));
    expect(r.cancelled_attempt.id).toBe(b1.id);
    expect(r.attempt.branch).toBe("orch/r1/T2/a2");
    expect(r.attempt.worktree_path).toBe(path.join(s.repo, ".orch", "worktrees", "r1", "T2-a2"));
    expect(existsSync(b1.worktree_path)).toBe(true);
    expect(git(r.attempt.worktree_path, "rev-parse", "--abbrev-ref", "HEAD")).toBe("orch/r1/T2/a2");
    // the reassigned (cancelled) attempt's worktree may be cleaned; the new one is active and stays
    const c = ok(s.cli.orch("cleanup", "--run", "r1", "--task", "T2"));
    expect(c.removed.map((x: any) => x.attempt_id)).toEqual([b1.id]);
    expect(c.skipped.map((x: any) => x.attempt_id)).toEqual([r.attempt.id]);
    expect(existsSync(b1.worktree_path)).toBe(false);
    expect(existsSync(r.attempt.worktree_path)).toBe(true);
  });

  test("a failed retry (bad --base-ref) leaves no new attempt, branch or worktree", () => {
    const s = setup();
    const a1 = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code")).attempt;
    ok(s.cli.inbox("fail", "--token", claim(s.cli, a1.thread_id), "--body", "no"));
    fails(s.cli.orch("retry", "--run", "r1", "--task", "T1", "--base-ref", "missing"), "not_found");
    expect(ok(s.cli.orch("task", "show", "--run", "r1", "--task", "T1")).attempts).toHaveLength(1);
    expect(orchBranches(s.repo)).toEqual(["orch/r1/T1/a1"]);
    expect(worktreeList(s.repo)).toHaveLength(2);
  });
});

describe("ids, refs and paths cannot escape or be read as options", () => {
  const badRefs: [string, RegExp][] = [
    ["--upload-pack=touch pwned", /starts with '-'/],
    ["-h", /starts with '-'/],
    ["main..HEAD", /contains '\.\.'/],
    ["/etc/passwd", /absolute path/],
    ["main\nHEAD", /line break/],
  ];
  test("a --base-ref starting with '-', holding '..', absolute or with a line break is refused before git runs", () => {
    const s = setup();
    for (const [ref, why] of badRefs) {
      const e = fails(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code", `--base-ref=${ref}`), "usage");
      expect(e.message, ref).toMatch(why);
      expectNothingMade(s);
      expect(existsSync(path.join(s.repo, "pwned"))).toBe(false);
    }
  });

  test("run and task ids with '..', '/', a leading '-' or a line break are refused at the edge", () => {
    const s = setup();
    for (const bad of ["../escape", "a/../../b", "/abs", "-rf", "a\nb", ".."]) {
      fails(s.cli.orch("task", "add", "--run", "r1", `--task=${bad}`, "--title", "x"), "usage");
      fails(s.cli.orch("dispatch", "--run", "r1", `--task=${bad}`, "--execution-mode", "code"), "usage");
      fails(s.cli.orch("run", "init", `--run=${bad}`, "--goal", "g"), "usage");
    }
    expectNothingMade(s);
  });

  test("--repo-path and --workspace-root with a line break are refused", () => {
    const s = setup();
    fails(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code", "--repo-path", `${s.repo}\nx`), "usage");
    fails(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code", "--workspace-root", "wt\nx"), "usage");
    expectNothingMade(s);
  });

  test("code flags need --execution-mode code", () => {
    const s = setup();
    fails(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "analysis", "--base-ref", "main"), "usage");
  });

  test("a different repository than cwd via --repo-path; the workspace root defaults inside it", () => {
    const s = setup();
    const t = tempDir("orch-other-");
    later(t.cleanup);
    const other = makeRepo(path.join(t.dir, "other"), "develop");
    const a = ok(s.cli.orch("dispatch", "--run", "r1", "--task", "T1", "--execution-mode", "code", "--repo-path", other.repo)).attempt;
    expect(a.repo_path).toBe(other.repo);
    expect(a.base_ref).toBe("develop");
    expect(a.worktree_path).toBe(path.join(other.repo, ".orch", "worktrees", "r1", "T1-a1"));
    expect(gitCode(other.repo, "rev-parse", "--verify", "--quiet", "refs/heads/orch/r1/T1/a1")).toBe(0);
    expect(orchBranches(s.repo)).toEqual([]);
  });
});

/** Just a repository (the library tests need no database). */
function bareRepo() {
  const t = tempDir("orch-lib-");
  later(t.cleanup);
  return makeRepo(path.join(t.dir, "repo"));
}

describe("createWorkspace refuses unsafe values itself (library callers skip the CLI's checks)", () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["run id with '..'", { run: "../up" }, /contains '\.\.'|absolute|'-'/],
    ["task id with '..'", { task: ".." }, /contains '\.\.'/],
    ["absolute task id", { task: "/etc" }, /absolute path/],
    ["Windows absolute task id", { task: "C:\\x" }, /absolute path|letters, digits/],
    ["task id with a leading '-'", { task: "-b" }, /starts with '-'/],
    ["run id with NUL", { run: "a\0b" }, /NUL/],
    ["task id with a newline", { task: "a\nb" }, /line break/],
    ["task id with a slash", { task: "a/b" }, /letters, digits/],
    ["base ref with NUL", { baseRef: "main\0" }, /NUL/],
    ["base ref with a leading '-'", { baseRef: "--output=/tmp/x" }, /starts with '-'/],
    ["base ref range", { baseRef: "a..b" }, /contains '\.\.'/],
    ["repo path with NUL", { repoPath: "a\0b" }, /NUL/],
    ["workspace root with a newline", { workspaceRoot: "a\nb" }, /line break/],
    ["attempt 0", { attempt: 0 }, /positive integer/],
  ];
  for (const [name, patch, why] of cases) {
    test(name, async () => {
      const s = bareRepo();
      const req = { run: "r1", task: "T1", attempt: 1, cwd: s.repo, ...patch } as Parameters<typeof createWorkspace>[0];
      await expect(createWorkspace(req)).rejects.toMatchObject({ code: "usage", message: expect.stringMatching(why) });
      expect(orchBranches(s.repo)).toEqual([]);
      expect(worktreeList(s.repo)).toHaveLength(1);
    });
  }

  test("the same attempt made twice at once: one wins, the other is a conflict and removes nothing of the winner's", async () => {
    const s = bareRepo();
    const req = { run: "r1", task: "T1", attempt: 1, cwd: s.repo };
    const results = await Promise.allSettled([createWorkspace(req), createWorkspace(req), createWorkspace(req)]);
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect((r.reason as { code: string }).code).toBe("conflict");
    const ws = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof createWorkspace>>>).value;
    expect(worktreeList(s.repo)).toEqual([{ path: s.repo, branch: "main" }, { path: ws.worktree_path, branch: ws.branch }]);
    expect(orchBranches(s.repo)).toEqual([ws.branch]);
  });

  test("Windows-reserved names get a safe folder; the branch keeps the id", async () => {
    const s = bareRepo();
    const ws = await createWorkspace({ run: "CON", task: "nul.txt", attempt: 1, cwd: s.repo });
    expect(ws.worktree_path).toBe(path.join(s.repo, ".orch", "worktrees", "_CON", "_nul.txt-a1"));
    expect(ws.branch).toBe("orch/CON/nul.txt/a1");
    const ws2 = await createWorkspace({ run: "r1", task: "aux", attempt: 2, cwd: s.repo });
    expect(path.basename(ws2.worktree_path)).toBe("aux-a2");
    const ws3 = await createWorkspace({ run: "r1", task: "com1.x", attempt: 1, cwd: s.repo });
    expect(path.basename(ws3.worktree_path)).toBe("_com1.x-a1");
  });
});

describe("git and dax load on demand", () => {
  test("only lib/worktrees.ts mentions dax-sh, and only as a dynamic import; the CLI and status reach it dynamically", () => {
    const files = ["lib", "cli"].flatMap((d) => readdirSync(path.join(ROOT, d)).filter((f) => f.endsWith(".ts")).map((f) => path.join(ROOT, d, f)));
    const users = files.filter((f) => readFileSync(f, "utf8").includes('"dax-sh"'));
    expect(users.map((f) => path.relative(ROOT, f))).toEqual([path.join("lib", "worktrees.ts")]);
    const src = readFileSync(path.join(ROOT, "lib", "worktrees.ts"), "utf8");
    expect(src).not.toMatch(/^import[^;]*"dax-sh"/m);
    expect(src).toMatch(/import\("dax-sh"\)/);
    // modules that every command loads reach git code only through import()
    for (const f of ["cli/cleanup_command.ts", "lib/status.ts"]) {
      expect(readFileSync(path.join(ROOT, f), "utf8")).not.toMatch(/^import (?!type)[^;]*"\.\.?\/(lib\/)?cleanup\.ts"/m);
    }
  });
});
