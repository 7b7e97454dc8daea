/**
 * Every runnable shell example in README.md and the two SKILL.md files is run
 * through the packaged skill launchers against a temporary database, so
 * documentation that drifts from the CLI fails the suite.
 *
 * The convention, for anyone writing these documents:
 * - A fenced block whose info string starts with `sh`, `bash` or `shell` is
 *   run. Anything else (```text, ```json, ```cmd ...) is not: use ```text
 *   for output, placeholders and other things that are not commands.
 * - Skipped: blocks containing `npm ci` (the install commands) and blocks
 *   whose info string contains `norun` (```sh norun).
 * - The runnable blocks of one document run in order in one `sh -eu` session
 *   (shell variables carry over), and every command must succeed.
 * - `--timeout-seconds N` is rewritten to `--timeout-seconds 2`, so an
 *   example that waits for something nobody will send stays short.
 * - Where each document runs:
 *   README.md: a fresh git repository with one commit (so code-mode
 *     examples work), with the `orch`, `inbox` and `orch-worker-brief`
 *     launchers on PATH.
 *   skills/orch/SKILL.md: the orch skill folder (beside the inbox skill, as
 *     `../inbox`), inside a fresh git repository with one commit, so code-mode
 *     examples work.
 *   skills/inbox/SKILL.md: the inbox skill folder, where ./coord.db already
 *     holds run blog_mvp_001 with tasks T1 and T2 dispatched (analysis mode)
 *     to qa-worker on threads 1 and 2.
 * The launchers run the linux-x64 binary where the host has it, else Node.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { BINARY, ROOT, tempDir } from "./_helpers.ts";
import { packageSkills } from "../scripts/package.mjs";

export interface Block {
  file: string;
  line: number;
  info: string;
  code: string;
}

/** The fenced code blocks of a Markdown document, with the line each starts on. */
export function fencedBlocks(markdown: string, file: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})(.*)$/.exec(lines[i]);
    if (!open) continue;
    const fence = open[2];
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !new RegExp(`^\\s*${fence[0]}{${fence.length},}\\s*$`).test(lines[j])) body.push(lines[j++]);
    blocks.push({ file, line: i + 1, info: open[3].trim(), code: body.join("\n") });
    i = j;
  }
  return blocks;
}

/** The blocks the convention above says to run. */
export function runnableBlocks(markdown: string, file: string): Block[] {
  return fencedBlocks(markdown, file).filter((b) => /^(sh|bash|shell)\b/.test(b.info) && !/\bnorun\b/.test(b.info) && !b.code.includes("npm ci"));
}

function script(blocks: Block[]): string {
  const parts = ["set -eu"];
  for (const b of blocks) {
    parts.push(`printf '\\n>>> %s:%s\\n' ${JSON.stringify(b.file)} ${b.line} >&2`, "set -x", b.code.replace(/--timeout-seconds \d+/g, "--timeout-seconds 2"), "set +x");
  }
  return `${parts.join("\n")}\n`;
}

function runDoc(blocks: Block[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync("sh", ["-c", script(blocks)], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", ...env }, timeout: 90_000 });
  if (r.status !== 0) {
    throw new Error(`documentation examples failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ""}); the last block and command ran are at the end:\n${r.stderr.slice(-4000)}\nstdout (end):\n${r.stdout.slice(-1500)}`);
  }
  return r;
}

const hasBinary = process.platform === "linux" && process.arch === "x64" && existsSync(BINARY);
let t: ReturnType<typeof tempDir>;
let pkg: string;

function git(cwd: string, ...args: string[]) {
  const r = spawnSync("git", args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, GIT_AUTHOR_NAME: "docs", GIT_AUTHOR_EMAIL: "docs@orch.invalid", GIT_COMMITTER_NAME: "docs", GIT_COMMITTER_EMAIL: "docs@orch.invalid" },
  });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
}

/** Makes `dir` a git repository with one commit on main (skills/ and .orch/ ignored). */
function gitRepo(dir: string) {
  writeFileSync(path.join(dir, ".gitignore"), "skills/\n.orch/\n");
  writeFileSync(path.join(dir, "app.txt"), "the app\n");
  git(dir, "init", "-q", "-b", "main");
  git(dir, "add", ".");
  git(dir, "commit", "-q", "-m", "base");
}

/** A fresh copy of the packaged skills under `dir/skills` (hard links: cheap). */
function skillsCopy(dir: string): string {
  const dest = path.join(dir, "skills");
  packageSkills({ outDir: dest, targets: hasBinary ? ["linux-x64"] : [] });
  return dest;
}

beforeAll(() => {
  t = tempDir("orch-docs-");
  pkg = skillsCopy(path.join(t.dir, "pkg"));
});
afterAll(() => t?.cleanup());

describe("the block extractor", () => {
  test("finds sh/bash blocks with their lines and skips text, npm ci and norun blocks", () => {
    const md = ["# x", "```sh", "echo one", "```", "```text", "not run", "```", "```sh norun", "rm -rf /", "```", "```bash", "npm ci && npm test", "```", "````shell", "echo ```", "echo two", "````"].join("\n");
    const blocks = runnableBlocks(md, "x.md");
    expect(blocks.map((b) => [b.line, b.code])).toEqual([[2, "echo one"], [14, "echo ```\necho two"]]);
  });
});

describe("documentation examples run against the CLI", () => {
  test("skills/orch/SKILL.md: every sh block, in a git repository", () => {
    const blocks = runnableBlocks(readFileSync(path.join(ROOT, "skills/orch/SKILL.md"), "utf8"), "skills/orch/SKILL.md");
    expect(blocks.length).toBeGreaterThanOrEqual(6);
    const repo = path.join(t.dir, "orch-doc");
    mkdirSync(repo);
    skillsCopy(repo);
    gitRepo(repo);
    const cwd = path.join(repo, "skills", "orch");
    runDoc(blocks, cwd);
    // the examples really did something: the analysis task is done, its brief was written
    const status = spawnSync(path.join(cwd, "assets", "orch"), ["--db", "coord.db", "--json", "status", "--run", "blog_mvp_001"], { cwd, encoding: "utf8" });
    const s = JSON.parse(status.stdout);
    expect(s.tasks.find((x: any) => x.id === "T1").status).toBe("done");
    expect(readFileSync(path.join(cwd, "t1-brief.md"), "utf8")).toContain("claim --as qa-worker --thread 1");
    // the code-mode example made a real worktree, and its brief says to work there
    const t2 = s.tasks.find((x: any) => x.id === "T2").attempt;
    expect(t2).toMatchObject({ execution_mode: "code", branch: expect.stringMatching(/^orch\//) });
    expect(existsSync(t2.worktree_path)).toBe(true);
    expect(readFileSync(path.join(cwd, "t2-brief.md"), "utf8")).toContain(`- worktree: ${t2.worktree_path}`);
  });

  test("skills/inbox/SKILL.md: every sh block, on dispatched threads", () => {
    const blocks = runnableBlocks(readFileSync(path.join(ROOT, "skills/inbox/SKILL.md"), "utf8"), "skills/inbox/SKILL.md");
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    const cwd = path.join(skillsCopy(path.join(t.dir, "inbox-doc")), "inbox");
    runDoc([{
      file: "(setup: a leader dispatched T1 and T2 to qa-worker)",
      line: 0,
      info: "sh",
      code: [
        "./assets/inbox --db ./coord.db --json init",
        "./assets/orch --db ./coord.db --json run init --run blog_mvp_001 --goal 'Build blog MVP'",
        "./assets/orch --db ./coord.db --json task add --run blog_mvp_001 --task T1 --title 'Summarize flaky tests' --default-to qa-worker",
        "./assets/orch --db ./coord.db --json task add --run blog_mvp_001 --task T2 --title 'Summarize old failures' --default-to qa-worker",
        "./assets/orch --db ./coord.db --json dispatch --run blog_mvp_001 --task T1 --execution-mode analysis",
        "./assets/orch --db ./coord.db --json dispatch --run blog_mvp_001 --task T2 --execution-mode analysis",
      ].join("\n"),
    }, ...blocks], cwd);
    const status = spawnSync(path.join(cwd, "assets", "orch"), ["--db", "coord.db", "--json", "status", "--run", "blog_mvp_001"], { cwd, encoding: "utf8" });
    const byId = Object.fromEntries(JSON.parse(status.stdout).tasks.map((x: any) => [x.id, x.status]));
    expect(byId).toEqual({ T1: "done", T2: "failed" });
  });

  test("README.md: every runnable sh block, with the launchers on PATH", () => {
    const blocks = runnableBlocks(readFileSync(path.join(ROOT, "README.md"), "utf8"), "README.md");
    const dir = path.join(t.dir, "readme-doc");
    mkdirSync(dir);
    gitRepo(dir);
    runDoc(blocks, dir, { PATH: `${path.join(pkg, "orch", "assets")}${path.delimiter}${process.env.PATH}` });
  });
});
