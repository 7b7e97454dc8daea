/**
 * Binaries for every host, compiled once here into a temporary directory (so
 * dist/bin, which other test files run, is never rewritten under them), with
 * their checksums, and the full package that holds them.
 *
 * - linux-x64 and linux-arm64: ELF for the right CPU; linux-arm64 also runs
 *   --version, init and a write under qemu-user-static (skipped, saying so,
 *   only where qemu-aarch64-static or the arm64 C library is missing).
 * - darwin-x64/arm64 and windows-x64: well-formed Mach-O and PE executables
 *   for the right CPU (nothing here can run them).
 * The packaged skills' launchers and a full run through them are in
 * dist_package.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { BUNDLE, tempDir } from "./_helpers.ts";
import { binaryName, compile, TARGETS } from "../scripts/compile.mjs";
import { LAUNCHERS, packageSkills, SKILLS } from "../scripts/package.mjs";

const QEMU = "/usr/bin/qemu-aarch64-static";
const ARM64_LIBC = "/usr/aarch64-linux-gnu";
const hasQemu = existsSync(QEMU) && existsSync(path.join(ARM64_LIBC, "lib"));

let t: ReturnType<typeof tempDir>;
let bundle: string; // a snapshot of dist/orch.mjs, so a rebuild elsewhere cannot change it under these tests
let binDir: string;
let pkg: string;

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

function okJson(r: { code: number; stdout: string; stderr: string }) {
  if (r.code !== 0) throw new Error(`exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const j = JSON.parse(r.stdout);
  expect(j.ok).toBe(true);
  return j;
}

beforeAll(async () => {
  t = tempDir("orch-bins-");
  bundle = path.join(t.dir, "orch.mjs");
  copyFileSync(BUNDLE, bundle);
  binDir = path.join(t.dir, "bin");
  const started = Date.now();
  await compile(TARGETS, { outDir: binDir, bundle });
  // for the report only (never asserted: the machine is shared)
  console.log(`dist: compiled ${TARGETS.length} targets in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  pkg = path.join(t.dir, "skills");
  packageSkills({ outDir: pkg, binDir, bundle, targets: TARGETS });
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

describe("the package with every binary", () => {
  test("each skill folder has its SKILL.md, references, launchers, the bundle and every binary", () => {
    for (const skill of SKILLS) {
      const dir = path.join(pkg, skill);
      expect(existsSync(path.join(dir, "SKILL.md")), `${skill}/SKILL.md`).toBe(true);
      for (const l of LAUNCHERS) {
        expect(statSync(path.join(dir, "assets", l)).mode & 0o111, `${skill}/assets/${l} executable`).not.toBe(0);
        expect(existsSync(path.join(dir, "assets", `${l}.cmd`))).toBe(true);
      }
      expect(sha256(path.join(dir, "assets", "orch.mjs"))).toBe(sha256(bundle));
      expect(readdirSync(path.join(dir, "assets", "bin")).sort()).toEqual(["SHA256SUMS", ...TARGETS.map(binaryName)].sort());
    }
    expect(readdirSync(path.join(pkg, "orch", "references")).sort()).toEqual(["leader-dispatch-and-launch-checklist.md", "worker-brief-template.md"]);
  });

});
