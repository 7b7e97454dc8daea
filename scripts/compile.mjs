/**
 * Compiles self-contained binaries from the single-file bundle with
 * `bun build --compile`, and writes SHA256SUMS beside them. Bun takes the
 * runtime for each target from the npm registry (@oven/bun-<os>-<arch>) and
 * keeps it in its install cache (~/.bun/install/cache), so after the first
 * run on a machine compiling needs no network at all.
 *
 * Usage: node scripts/compile.mjs [target ...]   (default: every target)
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, readdirSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { buildBundle } from "./build.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const TARGETS = ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64", "windows-x64"];
export const binDir = path.join(root, "dist", "bin");
const defaultBundle = path.join(root, "dist", "orch.mjs");

export function binaryName(target) {
  return `orch-${target}${target.startsWith("windows") ? ".exe" : ""}`;
}

/**
 * Compiles `targets` from `bundle` into `outDir`. Each binary is written
 * under a temporary name and renamed into place, so a process running the
 * previous binary is never handed a half-written file.
 */
export async function compile(targets = TARGETS, { outDir = binDir, bundle = defaultBundle } = {}) {
  const unknown = targets.filter((t) => !TARGETS.includes(t));
  if (unknown.length) throw new Error(`unknown target ${unknown.join(", ")}; targets are ${TARGETS.join(", ")}`);
  if (!existsSync(bundle)) await buildBundle(bundle);
  mkdirSync(outDir, { recursive: true });
  const bun = path.join(root, "node_modules", ".bin", process.platform === "win32" ? "bun.cmd" : "bun");
  const outs = [];
  for (const target of targets) {
    const out = path.join(outDir, binaryName(target));
    // bun appends .exe to a Windows outfile without it: keep the name's ending
    const tmp = path.join(outDir, `.tmp-${process.pid}-${binaryName(target)}`);
    // --bytecode: JavaScriptCore bytecode compiled at build time is embedded, so a start skips parsing the
    // bundle (about half of a short command's start-up; BENCHMARKS.md has the numbers)
    execFileSync(bun, ["build", "--compile", "--minify", "--bytecode", "--format=esm", `--target=bun-${target}`, bundle, "--outfile", tmp], { stdio: ["ignore", "ignore", "inherit"] });
    renameSync(tmp, out);
    outs.push(out);
  }
  writeChecksums(outDir);
  return outs;
}

/** Writes SHA256SUMS (the `sha256sum -c` format) for every binary in `dir`. */
export function writeChecksums(dir = binDir) {
  const lines = readdirSync(dir)
    .filter((f) => /^orch-[a-z0-9]+-[a-z0-9]+(\.exe)?$/.test(f))
    .sort()
    .map((f) => `${createHash("sha256").update(readFileSync(path.join(dir, f))).digest("hex")}  ${f}`);
  writeFileSync(path.join(dir, "SHA256SUMS"), `${lines.join("\n")}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const targets = process.argv.slice(2);
  await buildBundle();
  for (const out of await compile(targets.length ? targets : TARGETS)) console.log(`compiled ${path.relative(root, out)}`);
  console.log(`wrote ${path.relative(root, path.join(binDir, "SHA256SUMS"))}`);
}
