/**
 * Distribution: binaries for every host (compiled once here, into a temporary
 * directory, so dist/bin that other test files run is never rewritten under
 * them), checksums, the packaged skill folders and their launchers.
 *
 * - linux-x64: a full leader-worker run through the launchers of a package
 *   copied to another directory.
 * - linux-arm64: --version, init and a write under qemu-user-static (skipped,
 *   saying so, only where qemu-aarch64-static or the arm64 C library is missing).
 * - darwin-x64/arm64 and windows-x64: well-formed Mach-O and PE executables
 *   for the right CPU.
 * - launchers: fall back to deno, node or bun when no binary matches, and say
 *   what to install when nothing can run.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, chmodSync } from "node:fs";
import * as path from "node:path";
import { BUNDLE, DENO, ROOT, tempDir } from "./_helpers.ts";
import { binaryName, compile, TARGETS } from "../scripts/compile.mjs";
import { LAUNCHERS, packageSkills, SKILLS } from "../scripts/package.mjs";

const QEMU = "/usr/bin/qemu-aarch64-static";
const ARM64_LIBC = "/usr/aarch64-linux-gnu";
const hasQemu = existsSync(QEMU) && existsSync(path.join(ARM64_LIBC, "lib"));
const isLinuxX64 = process.platform === "linux" && process.arch === "x64";
const BUN = path.join(ROOT, "node_modules", ".bin", "bun");

let t: ReturnType<typeof tempDir>;
let bundle: string; // a snapshot of dist/orch.mjs, so a rebuild elsewhere cannot change it under these tests
let binDir: string;
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

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
const which = (p: string) => execFileSync("sh", ["-c", `command -v ${p}`], { encoding: "utf8" }).trim();

beforeAll(async () => {
  t = tempDir("orch-dist-");
  bundle = path.join(t.dir, "orch.mjs");
  copyFileSync(BUNDLE, bundle);
  binDir = path.join(t.dir, "bin");
  const started = Date.now();
  await compile(TARGETS, { outDir: binDir, bundle });
  packageSkills({ outDir: path.join(t.dir, "pkg"), binDir, bundle, targets: TARGETS });
  // "copy the skill folder somewhere else": a real copy, not links to the build
  copied = path.join(t.dir, "elsewhere", "skills");
  mkdirSync(path.dirname(copied));
  // -a keeps the hard links between the two skills (one copy of each binary, as in dist/skills)
  execFileSync("cp", ["-a", path.join(t.dir, "pkg"), copied]);
  // for the report only (never asserted: the machine is shared)
  console.log(`dist: compiled ${TARGETS.length} targets, packaged and copied in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}, 300_000);
afterAll(() => t?.cleanup());

describe("binaries and checksums", () => {
  test("every target is compiled and SHA256SUMS matches each binary", () => {
    const sums = readFileSync(path.join(binDir, "SHA256SUMS"), "utf8").trim().split("\n").map((l) => l.split(/\s+/));
    expect(sums.map(([, f]) => f)).toEqual(TARGETS.map(binaryName).sort());
    for (const [hash, file] of sums) {
      expect(sha256(path.join(binDir, file))).toBe(hash);
    }
  });

  test("linux binaries are ELF executables for x86-64 and AArch64", () => {
    for (const [target, machine] of [["linux-x64", 0x3e], ["linux-arm64", 0xb7]] as const) {
      const b = readFileSync(path.join(binDir, binaryName(target)));
      expect(b.subarray(0, 4).toString("latin1"), target).toBe("\x7fELF");
      expect(b[4], `${target} is 64-bit`).toBe(2);
      expect(b.readUInt16LE(18), `${target} e_machine`).toBe(machine);
      expect(statSync(path.join(binDir, binaryName(target))).mode & 0o111).not.toBe(0);
    }
  });

  test("darwin binaries are 64-bit Mach-O executables for x86-64 and arm64", () => {
    for (const [target, cpu] of [["darwin-x64", 0x01000007], ["darwin-arm64", 0x0100000c]] as const) {
      const b = readFileSync(path.join(binDir, binaryName(target)));
      // MH_MAGIC_64 0xfeedfacf, stored little-endian: cf fa ed fe
      expect(b.readUInt32LE(0).toString(16), `${target} magic`).toBe("feedfacf");
      expect(b.readUInt32LE(4), `${target} cputype`).toBe(cpu);
      expect(b.readUInt32LE(12), `${target} filetype is MH_EXECUTE`).toBe(2);
    }
  });

  test("the windows binary is a PE32+ console executable for x86-64", () => {
    const b = readFileSync(path.join(binDir, "orch-windows-x64.exe"));
    expect(b.subarray(0, 2).toString("latin1")).toBe("MZ");
    const pe = b.readUInt32LE(0x3c);
    expect(b.subarray(pe, pe + 4).toString("latin1")).toBe("PE\0\0");
    expect(b.readUInt16LE(pe + 4).toString(16)).toBe("8664");
    const optional = pe + 24;
    expect(b.readUInt16LE(optional).toString(16), "PE32+ optional header").toBe("20b");
    expect(b.readUInt16LE(optional + 68), "subsystem: console").toBe(3);
  });

  test.skipIf(!hasQemu)(`linux-arm64 under qemu-user-static: --version, init and a write${hasQemu ? "" : " (SKIPPED: install qemu-user-static and libc6-arm64-cross)"}`, () => {
    const bin = path.join(binDir, "orch-linux-arm64");
    const arm = (entry: string, args: string[]) => {
      const r = spawnSync(QEMU, ["-L", ARM64_LIBC, bin, ...args], { encoding: "utf8", env: { ...process.env, ORCH_ENTRY: entry, NO_COLOR: "1" }, timeout: 120_000 });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    };
    const v = okJson(arm("orch", ["--version", "--json"]));
    expect(v).toMatchObject({ version: expect.any(String), runtime: "bun", compiled: true, sqlite: expect.stringMatching(/^3\.\d+/) });
    const db = path.join(t.dir, "arm64.db");
    expect(okJson(arm("inbox", ["--db", db, "--json", "init"])).created).toBe(true);
    const sent = okJson(arm("inbox", ["--db", db, "--json", "send", "--to", "w1", "--body", "written on arm64"]));
    // the x64 side reads what the arm64 binary wrote: same file format
    const shown = JSON.parse(execFileSync(process.execPath, [bundle, "--db", db, "--json", "show", "--thread", String(sent.thread.id)], { encoding: "utf8", env: { ...process.env, ORCH_ENTRY: "inbox" } }));
    expect(shown.messages.map((m: any) => m.body)).toEqual(["written on arm64"]);
  });
});

describe("the packaged skills", () => {
  test("each skill folder has its SKILL.md, references, launchers, the bundle and every binary", () => {
    for (const skill of SKILLS) {
      const dir = path.join(copied, skill);
      expect(existsSync(path.join(dir, "SKILL.md")), `${skill}/SKILL.md`).toBe(true);
      for (const l of LAUNCHERS) {
        expect(statSync(path.join(dir, "assets", l)).mode & 0o111, `${skill}/assets/${l} executable`).not.toBe(0);
        expect(existsSync(path.join(dir, "assets", `${l}.cmd`))).toBe(true);
      }
      expect(sha256(path.join(dir, "assets", "orch.mjs"))).toBe(sha256(bundle));
      expect(readdirSync(path.join(dir, "assets", "bin")).sort()).toEqual(["SHA256SUMS", ...TARGETS.map(binaryName)].sort());
    }
    expect(readdirSync(path.join(copied, "orch", "references")).sort()).toEqual(["leader-dispatch-and-launch-checklist.md", "worker-brief-template.md"]);
  });

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
    expect(text).toMatch(/^inbox \d+\.\d+\.\d+ \(bun [\d.]+, compiled; SQLite 3\.\d+\.\d+\)\n$/);
    const node = JSON.parse(execFileSync(process.execPath, [bundle, "--version", "--json"], { encoding: "utf8" }));
    expect(node).toMatchObject({ runtime: "node", runtime_version: process.versions.node, compiled: false, sqlite: viaLauncher.sqlite, version: viaLauncher.version });
    const deno = JSON.parse(execFileSync(DENO, ["run", "-A", "--quiet", path.join(ROOT, "mod.ts"), "--version", "--json"], { encoding: "utf8" }));
    expect(deno).toMatchObject({ runtime: "deno", compiled: false, sqlite: viaLauncher.sqlite });
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
