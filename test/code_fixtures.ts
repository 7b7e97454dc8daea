/** Shared fixtures for the code-mode tests: real temporary git repositories and a run with tasks. */
import { afterEach, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, realpathSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { cliFor, ok, type RuntimeKind, run, tempDir } from "./_helpers.ts";

/** Runs git in `cwd`; throws with git's output on failure. */
export function git(cwd: string, ...args: string[]): string {
  const r = spawnSync("git", ["-C", cwd, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")} failed in ${cwd}: ${r.stderr}${r.stdout}`);
  return r.stdout.trim();
}

/** Exit code of a git command (for "does this ref exist" checks). */
export function gitCode(cwd: string, ...args: string[]): number {
  return spawnSync("git", ["-C", cwd, ...args], { encoding: "utf8" }).status ?? -1;
}

/** A new repository at `dir` with one commit on `branch`; name and email set in its own config. */
export function makeRepo(dir: string, branch = "main"): { repo: string; head: string } {
  mkdirSync(dir, { recursive: true });
  git(dir, "init", "-q", "-b", branch);
  git(dir, "config", "user.name", "orch test");
  git(dir, "config", "user.email", "orch-test@example.invalid");
  git(dir, "config", "commit.gpgsign", "false");
  writeFileSync(path.join(dir, "README.md"), "base\n");
  git(dir, "add", "README.md");
  git(dir, "commit", "-q", "-m", "base");
  return { repo: realpathSync(dir), head: git(dir, "rev-parse", "HEAD") };
}

/** Commits a file in a checkout (a worker's work); returns the new commit. */
export function commitFile(dir: string, name: string, text: string): string {
  writeFileSync(path.join(dir, name), text);
  git(dir, "add", "--", name);
  git(dir, "commit", "-q", "-m", `add ${name}`);
  return git(dir, "rev-parse", "HEAD");
}

/** Paths of `git worktree list --porcelain -z`. */
export function worktreeList(repo: string): { path: string; branch?: string }[] {
  const out = spawnSync("git", ["-C", repo, "worktree", "list", "--porcelain", "-z"], { encoding: "utf8" }).stdout;
  const list: { path: string; branch?: string }[] = [];
  for (const f of out.split("\0")) {
    if (f.startsWith("worktree ")) list.push({ path: f.slice(9) });
    else if (f.startsWith("branch ")) list[list.length - 1]!.branch = f.slice(7).replace(/^refs\/heads\//, "");
  }
  return list;
}

export function orchBranches(repo: string): string[] {
  return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/orch/").split("\n").filter(Boolean);
}

/**
 * A temp dir holding a database, a repository (default branch `branch`) and a
 * run `r1` with tasks; `cli` runs in the repository, so --repo-path defaults to it.
 */
export function codeSetup(opts: { runtime?: RuntimeKind; branch?: string; tasks?: string[]; repoName?: string } = {}) {
  const runtime = opts.runtime ?? "node";
  const t = tempDir("orch-code-");
  const db = path.join(t.dir, "coord.db");
  const { repo, head } = makeRepo(path.join(t.dir, opts.repoName ?? "repo"), opts.branch ?? "main");
  ok(run(["--db", db, "--json", "init"], { runtime, entry: "inbox" }));
  const cli = cliFor(db, runtime, repo);
  ok(cli.orch("run", "init", "--run", "r1", "--goal", "code mode"));
  for (const task of opts.tasks ?? ["T1"]) ok(cli.orch("task", "add", "--run", "r1", "--task", task, "--title", `task ${task}`, "--default-to", "w1"));
  return { ...t, db, repo, head, cli, runtime };
}

/** A worker claims the attempt's thread; returns the lease token. */
export function claim(cli: ReturnType<typeof cliFor>, thread: number, as = "w1"): string {
  return ok(cli.inbox("claim", "--as", as, "--thread", String(thread))).lease.token;
}

/**
 * `codeSetup` for a test file: every repository made through `setup`, and
 * everything handed to `later`, is removed after its test.
 */
export function codeSetups() {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    while (cleanups.length) cleanups.pop()!();
  });
  const later = (cleanup: () => void): void => void cleanups.push(cleanup);
  const setup = (opts: Parameters<typeof codeSetup>[0] = {}) => {
    const s = codeSetup(opts);
    later(s.cleanup);
    return s;
  };
  return { setup, later };
}

/** The task has no attempt, no branch and no worktree: nothing half-made. */
export function expectNothingMade(s: ReturnType<typeof codeSetup>, task = "T1"): void {
  expect(ok(s.cli.orch("task", "show", "--run", "r1", "--task", task)).attempts).toEqual([]);
  expect(orchBranches(s.repo)).toEqual([]);
  expect(worktreeList(s.repo).map((w) => w.path)).toEqual([s.repo]);
  expect(existsSync(path.join(s.repo, ".orch", "worktrees", "r1", `${task}-a1`))).toBe(false);
}
