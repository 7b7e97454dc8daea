/**
 * The packaged skill folders and their launchers: a package copied to another
 * directory runs a full leader-worker loop on the linux-x64 binary (from
 * dist/bin, built by the global setup); without a binary for the host the
 * launchers run orch.mjs with deno, node or bun, and with nothing to run they
 * say what to install. The binaries of the other hosts are checked in
 * dist_binaries.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { BINARY, BUNDLE, DENO, ROOT, tempDir } from "./_helpers.ts";
import { LAUNCHERS, packageSkills, SKILLS } from "../scripts/package.mjs";
import { VERSION } from "../lib/version.ts";

const isLinuxX64 = process.platform === "linux" && process.arch === "x64" && existsSync(BINARY);
const BUN = path.join(ROOT, "node_modules", ".bin", "bun");

let t: ReturnType<typeof tempDir>;
let bundle: string; // a snapshot of dist/orch.mjs, so a rebuild elsewhere cannot change it under these tests
let copied: string; // the package, copied to another directory

function launch(skillsDir: string, skill: string, launcher: string, args: string[], o: { cwd?: string; env?: Record<string, string>; input?: string } = {}) {
  const r = spawnSync(path.join(skillsDir, skill, "assets", launcher), args, {
    cwd: o.cwd,
    encoding: "utf8",
    input: o.input,
    env: { ...process.env, NO_COLOR: "1", ORCH_ENTRY: "", ORCH_INBOX_COMMAND: "", ...o.env },
    timeout: 60_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function okJson(r: { code: number; stdout: string; stderr: string }) {
  if (r.code !== 0) throw new Error(`exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const j = JSON.parse(r.stdout);
  expect(j.ok).toBe(true);
  return j;
}

/** A directory holding only the named programs (symlinks), to build a PATH from. */
function pathWith(dir: string, programs: Record<string, string>): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, target] of Object.entries(programs)) symlinkSync(target, path.join(dir, name));
  return dir;
}

const which = (p: string) => execFileSync("sh", ["-c", `command -v ${p}`], { encoding: "utf8" }).trim();
beforeAll(() => {
  t = tempDir("orch-pkg-");
  bundle = path.join(t.dir, "orch.mjs");
  copyFileSync(BUNDLE, bundle);
  packageSkills({ outDir: path.join(t.dir, "pkg"), binDir: path.dirname(BINARY), bundle, targets: isLinuxX64 ? ["linux-x64"] : [] });
  // "copy the skill folders somewhere else": a real copy, not links to the build
  copied = path.join(t.dir, "elsewhere", "skills");
  mkdirSync(path.dirname(copied));
  execFileSync("cp", ["-a", path.join(t.dir, "pkg"), copied]);
}, 120_000);
afterAll(() => t?.cleanup());

describe("the packaged skills", () => {
  test("the launchers are one script: each differs from the orch launcher only in its name and entry", () => {
    const norm = (s: string, name: string) => s.replaceAll(`ORCH_ENTRY=${name}`, "ORCH_ENTRY=X").replaceAll(`"ORCH_ENTRY=${name}"`, '"ORCH_ENTRY=X"').replace(/Launcher for \S+,/, "Launcher for X,");
    for (const skill of SKILLS) {
      const ref = norm(readFileSync(path.join(ROOT, "skills/orch/assets/orch"), "utf8"), "orch");
      const refCmd = norm(readFileSync(path.join(ROOT, "skills/orch/assets/orch.cmd"), "utf8"), "orch");
      for (const l of LAUNCHERS) {
        const sh = readFileSync(path.join(ROOT, "skills", skill, "assets", l), "utf8");
        const cmd = readFileSync(path.join(ROOT, "skills", skill, "assets", `${l}.cmd`), "utf8");
        expect(sh).toContain(`\nORCH_ENTRY=${l}\n`);
        expect(cmd).toContain(`\r\nset "ORCH_ENTRY=${l}"\r\n`);
        expect(norm(sh, l), `${skill}/assets/${l}`).toBe(ref);
        expect(norm(cmd, l), `${skill}/assets/${l}.cmd`).toBe(refCmd);
        expect(cmd.replace(/\r\n/g, "").includes("\n"), `${l}.cmd has CRLF line ends only`).toBe(false);
        expect(spawnSync("sh", ["-n", path.join(ROOT, "skills", skill, "assets", l)]).status).toBe(0);
      }
    }
  });

  test.skipIf(!isLinuxX64)("--version through the launcher runs the linux-x64 binary; node, deno and the binary all report runtime and SQLite", () => {
    const viaLauncher = okJson(launch(copied, "inbox", "orch", ["--version", "--json"]));
    expect(viaLauncher).toMatchObject({ runtime: "bun", compiled: true });
    const text = launch(copied, "orch", "inbox", ["--version"]).stdout;
    expect(text).toMatch(/^inbox \d+\.\d+\.\d+ \(bun [\d.]+, compiled; SQLite 3\.\d+\.\d+ via bun:sqlite\)\n$/);
    const node = JSON.parse(execFileSync(process.execPath, [bundle, "--version", "--json"], { encoding: "utf8" }));
    expect(node).toMatchObject({ runtime: "node", runtime_version: process.versions.node, compiled: false, sqlite: viaLauncher.sqlite, version: viaLauncher.version });
    const deno = JSON.parse(execFileSync(DENO, ["run", "-A", "--quiet", path.join(ROOT, "mod.ts"), "--version", "--json"], { encoding: "utf8" }));
    // Deno uses its own built-in SQLite (node:sqlite), whose release may differ
    expect(deno).toMatchObject({ runtime: "deno", compiled: false, sqlite_binding: "node:sqlite" });
    expect(deno.sqlite).toMatch(/^3\.\d+\.\d+$/);
  });

  test("one version everywhere: lib/version.ts, package.json, deno.json, and what --version prints", () => {
    const pkgVersion = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).version;
    expect(JSON.parse(readFileSync(path.join(ROOT, "deno.json"), "utf8")).version).toBe(pkgVersion);
    expect(VERSION).toBe(pkgVersion);
    const printed = JSON.parse(execFileSync(process.execPath, [bundle, "--version", "--json"], { encoding: "utf8", env: { ...process.env, ORCH_ENTRY: "orch-worker-brief" } }));
    expect(printed).toMatchObject({ ok: true, version: pkgVersion, schema_version: expect.any(Number) });
  });

  test.skipIf(!isLinuxX64)("a full leader-worker run through the copied launchers: dispatch, brief, claim, progress, done", () => {
    const work = path.join(t.dir, "project");
    mkdirSync(work);
    const orch = (...a: string[]) => okJson(launch(copied, "orch", "orch", ["--db", "coord.db", "--json", ...a], { cwd: work }));
    okJson(launch(copied, "orch", "inbox", ["--db", "coord.db", "--json", "init"], { cwd: work }));
    orch("run", "init", "--run", "R1", "--goal", "Summarise the logs");
    orch("task", "add", "--run", "R1", "--task", "T1", "--title", "Read the logs", "--default-to", "w1");
    const dispatch = launch(copied, "orch", "orch", ["--db", "coord.db", "--json", "dispatch", "--run", "R1", "--task", "T1", "--execution-mode", "analysis"], { cwd: work });
    const attempt = okJson(dispatch).attempt;
    writeFileSync(path.join(work, "t1.json"), dispatch.stdout);
    const brief = launch(copied, "orch", "orch-worker-brief", ["--dispatch-json", "t1.json", "--db", "coord.db"], { cwd: work });
    expect(brief.code).toBe(0);
    // the launcher told the brief where the inbox skill's launcher is
    const inboxLauncher = path.join(copied, "inbox", "assets", "inbox");
    const claimLine = brief.stdout.split("\n").map((l) => l.trim()).find((l) => l.includes(" claim --as "));
    expect(claimLine).toBe(`${inboxLauncher} --db ${path.join(work, "coord.db")} --json claim --as w1 --thread ${attempt.thread_id}`);
    // the worker runs from its own directory, exactly what the brief says
    const workerDir = path.join(t.dir, "worker");
    mkdirSync(workerDir);
    const claim = spawnSync("sh", ["-c", claimLine!], { cwd: workerDir, encoding: "utf8", env: { ...process.env, ORCH_ENTRY: "" } });
    const token = okJson({ code: claim.status ?? -1, stdout: claim.stdout, stderr: claim.stderr }).lease.token;
    const worker = (...a: string[]) => okJson(launch(copied, "inbox", "inbox", ["--db", path.join(work, "coord.db"), "--json", ...a], { cwd: workerDir }));
    worker("progress", "--token", token, "--body", "half way");
    worker("done", "--token", token, "--body", "all read", "--result-json", '{"files":[]}');
    const status = orch("status", "--run", "R1");
    expect(status.run.status).toBe("done");
    expect(status.tasks[0]).toMatchObject({ id: "T1", status: "done", latest_message: { kind: "result", body: "all read" } });
  });
});

describe("launcher fallbacks", () => {
  let nobin: string;
  let sysPath: string;
  beforeAll(() => {
    nobin = path.join(t.dir, "nobin");
    packageSkills({ outDir: nobin, bundle, targets: [] });
    // the launchers need only uname (and readlink for symlinks) from the system
    sysPath = pathWith(path.join(t.dir, "sys"), { uname: which("uname"), readlink: which("readlink") });
  });

  const versionWith = (skills: string, programs: Record<string, string>, name: string) => {
    const dir = pathWith(path.join(t.dir, `path-${name}`), programs);
    return launch(skills, "orch", "inbox", ["--version", "--json"], { env: { PATH: `${dir}:${sysPath}` } });
  };

  test("no binary: node runs orch.mjs", () => {
    const r = okJson(versionWith(nobin, { node: process.execPath }, "node"));
    expect(r).toMatchObject({ runtime: "node", compiled: false });
  });

  test("no binary: deno is preferred when installed, then bun", () => {
    expect(okJson(versionWith(nobin, { deno: DENO, node: process.execPath }, "deno")).runtime).toBe("deno");
    expect(okJson(versionWith(nobin, { bun: BUN }, "bun")).runtime).toBe("bun");
  });

  test("a host with no binary (here: a pretend FreeBSD on riscv64) uses the bundle too", () => {
    const fake = path.join(t.dir, "fake-uname");
    writeFileSync(fake, '#!/bin/sh\ncase "$1" in -s) echo FreeBSD ;; -m) echo riscv64 ;; esac\n');
    chmodSync(fake, 0o755);
    const dir = pathWith(path.join(t.dir, "path-freebsd"), { uname: fake, node: process.execPath });
    const r = launch(copied, "orch", "orch", ["--version", "--json"], { env: { PATH: dir } });
    expect(okJson(r).runtime).toBe("node");
  });

  test("nothing can run: exit 127 with the supported hosts and what to install", () => {
    const r = launch(nobin, "orch", "orch-worker-brief", ["--help"], { env: { PATH: sysPath } });
    expect(r.code).toBe(127);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("orch-worker-brief: cannot run here");
    expect(r.stderr).toContain("linux-x64, linux-arm64 (glibc), darwin-x64, darwin-arm64, windows-x64");
    expect(r.stderr).toMatch(/Deno 2 or later.*\n?.*Node\.js 20 or later.*Bun/s);
  });

  test("a launcher without its folder's bundle (the source tree) says the folder is incomplete", () => {
    const r = launch(path.join(ROOT, "skills"), "orch", "orch", ["--version"], { env: { PATH: `${pathWith(path.join(t.dir, "path-src"), { node: process.execPath })}:${sysPath}` } });
    expect(r.code).toBe(127);
    expect(r.stderr).toContain("orch.mjs is missing too (copy the whole skill folder; from the orch sources, run npm run package and use dist/skills)");
  });

  test("arguments reach the program untouched (spaces, quotes, globs, $)", () => {
    const odd = path.join(t.dir, "odd dir $HOME *");
    mkdirSync(odd);
    const db = path.join(odd, "it's.db");
    const r = launch(nobin, "inbox", "inbox", ["--db", db, "--json", "init"], { env: { PATH: `${pathWith(path.join(t.dir, "path-args"), { node: process.execPath })}:${sysPath}` } });
    expect(okJson(r).db).toBe(db);
    expect(existsSync(db)).toBe(true);
  });

  test("a launcher reached through a symlink finds its folder", () => {
    const link = path.join(t.dir, "linked-bin");
    mkdirSync(link);
    symlinkSync(path.join(nobin, "inbox", "assets", "inbox"), path.join(link, "inbox"));
    const r = spawnSync(path.join(link, "inbox"), ["--version", "--json"], { encoding: "utf8", env: { PATH: `${pathWith(path.join(t.dir, "path-link"), { node: process.execPath })}:${sysPath}` } });
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, runtime: "node" });
  });
});
