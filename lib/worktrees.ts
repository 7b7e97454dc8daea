/**
 * Git worktrees for code-mode attempts: a fresh branch and worktree per
 * attempt from a committed base, made through dax with every value passed as
 * an argument (never a shell string). dax is loaded on first use, so commands
 * that never touch git never load it.
 *
 * Layout: `<root>/<run>/<task>-a<N>` on branch `orch/<run>/<task>/a<N>`.
 * A folder per run keeps names unambiguous (ids may contain '-'); the
 * attempt suffix `-a<N>` is parsed from the right, so a task id can never
 * make two attempts share a folder.
 */
import type { CodeWorkspace } from "./attempts.ts";
import * as rt from "./_runtime.ts";
import { OrchError } from "./errors.ts";
import { idSchema } from "./validate.ts";

export interface WorkspaceRequest {
  run: string;
  task: string;
  attempt: number;
  /** The repository (default: the one containing cwd). */
  repoPath?: string;
  /** Base ref (default: the repo's HEAD commit). */
  baseRef?: string;
  /** Where worktrees go (default: `.orch/worktrees` in the repo; relative paths resolve against the repo). */
  workspaceRoot?: string;
  cwd: string;
}

export interface PreparedWorkspace extends CodeWorkspace {
  /** Notes for the leader, e.g. that uncommitted changes in the main checkout are not in the worktree. */
  notes: string[];
  main_checkout_dirty: boolean;
}

export const DEFAULT_WORKSPACE_ROOT = rt.path.join(".orch", "worktrees");

// ---- git through dax -------------------------------------------------------

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

type Dollar = typeof import("dax-sh").default;
let dollar: Promise<Dollar> | undefined;

/** Variables that would make `git -C DIR` act on some other repository. */
const GIT_ENV: Record<string, string | undefined> = {
  GIT_DIR: undefined,
  GIT_WORK_TREE: undefined,
  GIT_INDEX_FILE: undefined,
  GIT_COMMON_DIR: undefined,
  GIT_NAMESPACE: undefined,
  GIT_CEILING_DIRECTORIES: undefined,
  GIT_TERMINAL_PROMPT: "0",
  // status must not take index.lock: a worker may be committing in that worktree
  GIT_OPTIONAL_LOCKS: "0",
};

/** Runs git with `args` as separate arguments; never throws for a non-zero exit. */
export async function git(args: readonly string[]): Promise<GitResult> {
  dollar ??= import("dax-sh").then((m) => m.default);
  const $ = await dollar;
  const r = await $`git ${[...args]}`.env(GIT_ENV).stdin("null").stdout("piped").stderr("piped").noThrow();
  if (r.code === 127 && /command not found/.test(r.stderr)) {
    throw new OrchError("git_failed", "git is not installed or not on PATH", { hint: "install git; code mode needs it" });
  }
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** git's own words, for error messages. */
export function gitSaid(r: GitResult): string {
  const text = (r.stderr.trim() || r.stdout.trim() || `exit code ${r.code}`).replace(/\s*\n\s*/g, "; ");
  return text.length > 500 ? `${text.slice(0, 500)}...` : text;
}

function gitFailed(what: string, r: GitResult, hint?: string): OrchError {
  return new OrchError("git_failed", `${what} failed: git said: ${gitSaid(r)}`, { hint, details: { git_exit_code: r.code, git_stderr: r.stderr.trim() } });
}

// ---- input rules -----------------------------------------------------------

/** Why a value must not reach git or a path join, or undefined if it may. */
export function unsafeReason(value: string): string | undefined {
  if (value.includes("\0")) return "contains a NUL byte";
  if (/[\r\n]/.test(value)) return "contains a line break";
  if (value.startsWith("-")) return "starts with '-' (git would read it as an option)";
  if (rt.path.isAbsolute(value) || rt.path.win32.isAbsolute(value) || value.startsWith("/") || value.startsWith("\\")) {
    return "is an absolute path";
  }
  if (value.includes("..")) return "contains '..'";
  return undefined;
}

function checkId(value: unknown, what: string): string {
  if (typeof value !== "string") throw new OrchError("usage", `${what} must be a string`);
  const reason = unsafeReason(value);
  if (reason) throw new OrchError("usage", `${what} ${JSON.stringify(value)} ${reason}; it names a branch and a folder, so it is refused`);
  const r = idSchema(what).safeParse(value);
  if (!r.success) throw new OrchError("usage", `${what} ${JSON.stringify(value)}: ${r.error.issues[0]?.message ?? "invalid id"}`);
  return value;
}

/** A base ref: anything git can resolve to a commit, but never an option, a range or a path. */
export function checkRef(value: unknown, what = "--base-ref"): string {
  if (typeof value !== "string" || value.trim() === "") throw new OrchError("usage", `${what} must not be empty`);
  const reason = unsafeReason(value);
  if (reason) throw new OrchError("usage", `${what} ${JSON.stringify(value)} ${reason}; give a branch, tag or commit`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f\\]/.test(value) || value.length > 256) {
    throw new OrchError("usage", `${what} ${JSON.stringify(value)} is not a valid ref (control characters, backslash or over 256 characters)`);
  }
  return value;
}

function checkPathValue(value: string, what: string): string {
  if (value.includes("\0") || /[\r\n]/.test(value)) {
    throw new OrchError("usage", `${what} ${JSON.stringify(value)} contains a NUL byte or a line break`);
  }
  if (value.trim() === "") throw new OrchError("usage", `${what} must not be empty`);
  return value;
}

/** Windows refuses these names (with any extension) for files and folders. */
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;

/** A folder name that is valid on every OS (ids are already limited to [A-Za-z0-9._-]). */
export function portableSegment(name: string): string {
  return WINDOWS_RESERVED.test(name) || WINDOWS_RESERVED.test(name.split(".")[0]!) ? `_${name}` : name;
}

export function branchName(run: string, task: string, attempt: number): string {
  return `orch/${run}/${task}/a${attempt}`;
}

export function worktreePathFor(root: string, run: string, task: string, attempt: number): string {
  return rt.path.join(root, portableSegment(run), portableSegment(`${task}-a${attempt}`));
}

/** The workspace root a worktree was made under (inverse of worktreePathFor). */
export function workspaceRootOf(worktreePath: string): string {
  return rt.path.dirname(rt.path.dirname(worktreePath));
}

// ---- repository facts --------------------------------------------------------

/** The top directory of the checkout containing `dir`. */
export async function repoTopLevel(dir: string, what = "--repo-path"): Promise<string> {
  if (!rt.statOrNull(dir)?.isDirectory()) {
    throw new OrchError("not_found", `${what} ${dir} does not exist or is not a directory`, { hint: "pass --repo-path PATH of a git checkout" });
  }
  const r = await git(["-C", dir, "rev-parse", "--show-toplevel"]);
  const top = r.stdout.trim();
  if (r.code !== 0 || top === "") {
    throw new OrchError("usage", `${dir} is not inside a git checkout: git said: ${gitSaid(r)}`, {
      hint: "code mode needs a git repository with a work tree: pass --repo-path PATH, or run orch inside one",
      details: { git_exit_code: r.code, git_stderr: r.stderr.trim() },
    });
  }
  return rt.path.resolve(top);
}

/** Resolves a ref to a full commit id. */
export async function resolveCommit(repo: string, ref: string): Promise<string> {
  const r = await git(["-C", repo, "rev-parse", "--verify", "--end-of-options", `${ref}^{commit}`]);
  const sha = r.stdout.trim();
  if (r.code !== 0 || !/^[0-9a-f]{40,64}$/.test(sha)) {
    const empty = ref === "HEAD" && (await git(["-C", repo, "rev-parse", "--verify", "--quiet", "HEAD"])).code !== 0;
    throw new OrchError(
      "not_found",
      empty
        ? `the repository ${repo} has no commits yet, so there is no committed base: git said: ${gitSaid(r)}`
        : `base ref ${JSON.stringify(ref)} does not name a commit in ${repo}: git said: ${gitSaid(r)}`,
      {
        hint: empty ? "commit something first (code mode branches from a committed base)" : `check it with: git -C "${repo}" log -1 ${ref}`,
        details: { git_exit_code: r.code, git_stderr: r.stderr.trim() },
      },
    );
  }
  return sha;
}

async function currentBranch(repo: string): Promise<string | undefined> {
  const r = await git(["-C", repo, "symbolic-ref", "--short", "-q", "HEAD"]);
  const name = r.stdout.trim();
  return r.code === 0 && name ? name : undefined;
}

async function branchExists(repo: string, branch: string): Promise<boolean> {
  const r = await git(["-C", repo, "rev-parse", "--verify", "--quiet", "--end-of-options", `refs/heads/${branch}`]);
  return r.code === 0;
}

/** The repository's shared git directory (the same for every worktree). */
async function commonDir(repo: string): Promise<string> {
  const r = await git(["-C", repo, "rev-parse", "--git-common-dir"]);
  if (r.code !== 0) throw gitFailed("git rev-parse --git-common-dir", r);
  return rt.path.resolve(repo, r.stdout.trim());
}

/** Entries of `git status --porcelain -z` (renames take two fields). */
export function parsePorcelainZ(out: string): { code: string; path: string }[] {
  const fields = out.split("\0");
  const entries: { code: string; path: string }[] = [];
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.length < 4) continue;
    const code = f.slice(0, 2);
    entries.push({ code, path: f.slice(3) });
    if (code[0] === "R" || code[0] === "C") i++;
  }
  return entries;
}

/** Uncommitted changes (tracked and untracked, not ignored) in a checkout, or null if git cannot tell. */
export async function uncommittedChanges(dir: string): Promise<{ code: string; path: string }[] | null> {
  if (!rt.statOrNull(dir)?.isDirectory()) return null;
  // "normal" lists an untracked folder once instead of every file in it: enough to tell, and cheap
  const r = await git(["-C", dir, "status", "--porcelain", "-z", "--untracked-files=normal"]);
  return r.code === 0 ? parsePorcelainZ(r.stdout) : null;
}

/** True/false if the worktree at `dir` has uncommitted changes; null if it is missing or not a checkout. */
export async function worktreeDirty(dir: string): Promise<boolean | null> {
  const changes = await uncommittedChanges(dir);
  return changes === null ? null : changes.length > 0;
}

/** Escapes a path for a gitignore line (glob characters, leading '#'/'!', trailing spaces). */
function gitignoreEscape(p: string): string {
  return p.replace(/[\\*?[\]]/g, "\\$&").replace(/^([#!])/, "\\$1").replace(/ $/, "\\ ");
}

/**
 * Keeps the workspace root out of the main checkout's `git status` through
 * the repository's local exclude file (never a tracked .gitignore). Appends
 * only, so concurrent dispatches cannot lose each other's lines.
 */
async function excludeRoot(repo: string, root: string): Promise<void> {
  const rel = rt.path.relative(repo, root);
  if (rel === "" || rel.startsWith("..") || rt.path.isAbsolute(rel)) return; // outside the checkout
  const pattern = `/${gitignoreEscape(rel.split(rt.path.sep).join("/"))}/`;
  const file = rt.path.join(await commonDir(repo), "info", "exclude");
  const current = rt.exists(file) ? rt.readText(file) : "";
  if (current.split(/\r?\n/).some((line) => line.trim() === pattern)) return;
  rt.mkdirp(rt.path.dirname(file));
  const prefix = current === "" || current.endsWith("\n") ? "" : "\n";
  rt.appendText(file, `${prefix}# orch worktrees (kept out of git status)\n${pattern}\n`);
}

function describeChanges(changes: { code: string; path: string }[]): string {
  const untracked = changes.filter((c) => c.code === "??").length;
  const modified = changes.length - untracked;
  const sample = changes.slice(0, 3).map((c) => c.path).join(", ");
  const parts = [modified ? `${modified} changed` : "", untracked ? `${untracked} untracked` : ""].filter(Boolean).join(", ");
  return `${parts} file(s): ${sample}${changes.length > 3 ? ", ..." : ""}`;
}

/** Removes `dir` and its parents up to (not including) `stop` while they are empty. */
function removeEmptyDirs(dir: string, stop: string): void {
  let d = dir;
  while (d !== stop && d.startsWith(stop) && d.length > stop.length) {
    try {
      if (rt.readdir(d).length > 0) return;
      rt.rmdir(d);
    } catch {
      return; // gone already, or not ours to remove
    }
    d = rt.path.dirname(d);
  }
}

// ---- create and discard ------------------------------------------------------

/**
 * Makes the attempt's branch and worktree from a committed base. On any
 * failure nothing is left: the branch is made first with an atomic
 * "must not exist" update, so this call only ever deletes what it made.
 */
export async function createWorkspace(req: WorkspaceRequest): Promise<PreparedWorkspace> {
  const run = checkId(req.run, "run id");
  const task = checkId(req.task, "task id");
  if (!Number.isInteger(req.attempt) || req.attempt < 1) throw new OrchError("usage", `attempt number must be a positive integer, got ${req.attempt}`);
  const baseRefGiven = req.baseRef === undefined ? undefined : checkRef(req.baseRef);
  const cwd = checkPathValue(req.cwd, "cwd");
  const repoInput = rt.path.resolve(cwd, req.repoPath === undefined ? "." : checkPathValue(req.repoPath, "--repo-path"));
  const repo = await repoTopLevel(repoInput);
  const root = rt.path.resolve(repo, req.workspaceRoot === undefined ? DEFAULT_WORKSPACE_ROOT : checkPathValue(req.workspaceRoot, "--workspace-root"));
  if (root === repo) {
    throw new OrchError("usage", `--workspace-root ${root} is the repository's top directory; worktrees need a folder of their own`, {
      hint: `leave it out to use ${DEFAULT_WORKSPACE_ROOT}`,
    });
  }

  const baseRef = baseRefGiven ?? (await currentBranch(repo)) ?? "HEAD";
  const baseCommit = await resolveCommit(repo, baseRefGiven ?? "HEAD");
  const branch = branchName(run, task, req.attempt);
  const worktreePath = worktreePathFor(root, run, task, req.attempt);

  // Left-overs block the name: an interrupted dispatch (killed between making the
  // worktree and recording the attempt) or an earlier database with the same run id.
  const leftover = `if no attempt records it (\`orch task show --run ${run} --task ${task}\`), it is left over: ` +
    `git -C "${repo}" worktree remove --force "${worktreePath}"; git -C "${repo}" branch -D ${branch}`;
  if (rt.exists(worktreePath)) {
    throw new OrchError("conflict", `worktree path ${worktreePath} already exists`, { hint: `${leftover} (or pass another --workspace-root)` });
  }
  if (await branchExists(repo, branch)) {
    throw new OrchError("conflict", `branch ${branch} already exists in ${repo}`, { hint: leftover });
  }

  await excludeRoot(repo, root);
  const changes = await uncommittedChanges(repo);
  const notes: string[] = [];
  const dirty = (changes?.length ?? 0) > 0;
  if (dirty) {
    notes.push(
      `the main checkout ${repo} has uncommitted changes (${describeChanges(changes!)}); they are NOT in the worktree, ` +
        `which starts from the committed base ${baseRef} (${baseCommit.slice(0, 12)}). If the worker needs them, commit them and start a new attempt from that commit (reassign or retry with --base-ref).`,
    );
  }

  const created = [root, rt.path.dirname(worktreePath)].filter((d) => !rt.exists(d));
  const mk = await git(["-C", repo, "update-ref", "-m", `orch: branch for ${run}/${task} attempt ${req.attempt}`, "--", `refs/heads/${branch}`, baseCommit, ""]);
  if (mk.code !== 0) {
    // another process made it between the check above and here: the same attempt dispatched twice at once
    if (await branchExists(repo, branch)) {
      throw new OrchError("conflict", `branch ${branch} was just created by another process (the same attempt dispatched twice at once?): git said: ${gitSaid(mk)}`, {
        hint: `check \`orch task show --run ${run} --task ${task}\`; ${leftover}`,
      });
    }
    throw gitFailed(`creating branch ${branch}`, mk, `is the ref name valid and the repository writable? (${repo})`);
  }
  const add = await git(["-C", repo, "worktree", "add", "--quiet", "--", worktreePath, branch]);
  if (add.code !== 0) {
    // only what this call made is undone: the branch (if still at the base) and empty folders
    await git(["-C", repo, "update-ref", "-d", "--", `refs/heads/${branch}`, baseCommit]);
    for (const d of created.reverse()) removeEmptyDirs(d, rt.path.dirname(d));
    throw gitFailed(`git worktree add ${worktreePath}`, add, "nothing was created; fix the cause and dispatch again");
  }
  return {
    repo_path: repo,
    base_ref: baseRef,
    base_commit: baseCommit,
    branch,
    worktree_path: worktreePath,
    notes,
    main_checkout_dirty: dirty,
  };
}

/** Undoes createWorkspace (used when the dispatch transaction fails). Best effort; never throws. */
export async function discardWorkspace(ws: CodeWorkspace): Promise<void> {
  try {
    await git(["-C", ws.repo_path, "worktree", "remove", "--force", "--", ws.worktree_path]);
    // only if the branch still points at the base: never drop commits
    await git(["-C", ws.repo_path, "update-ref", "-d", "--", `refs/heads/${ws.branch}`, ws.base_commit]);
    removeEmptyDirs(rt.path.dirname(ws.worktree_path), workspaceRootOf(ws.worktree_path));
  } catch {
    // the transaction's error is the one to report
  }
}
