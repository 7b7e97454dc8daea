/**
 * Compiles self-contained binaries from the single-file bundle with
 * `bun build --compile` (target runtimes come from the npm registry, so this
 * works offline), and writes SHA256SUMS beside them.
 *
 * Usage: node scripts/compile.mjs [target ...]   (default: every target)
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync, readdirSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { buildBundle } from "./build.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const TARGETS = ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64", "windows-x64"];
export const binDir = path.join(root, "dist", "bin");

export function binaryName(target) {
  return `orch-${target}${target.startsWith("windows") ? ".exe" : ""}`;
}

export async function compile(targets = TARGETS) {
  const bundle = path.join(root, "dist", "orch.mjs");
  if (!existsSync(bundle)) await buildBundle(bundle);
  mkdirSync(binDir, { recursive: true });
  const bun = path.join(root, "node_modules", ".bin", process.platform === "win32" ? "bun.cmd" : "bun");
  for (const target of targets) {
    const out = path.join(binDir, binaryName(target));
    execFileSync(bun, ["build", "--compile", "--minify", `--target=bun-${target}`, bundle, "--outfile", out], { stdio: ["ignore", "ignore", "inherit"] });
  }
  writeChecksums();
  return targets.map((t) => path.join(binDir, binaryName(t)));
}

function writeChecksums() {
  const lines = readdirSync(binDir)
    .filter((f) => f.startsWith("orch-"))
    .sort()
    .map((f) => `${createHash("sha256").update(readFileSync(path.join(binDir, f))).digest("hex")}  ${f}`);
  writeFileSync(path.join(binDir, "SHA256SUMS"), `${lines.join("\n")}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const targets = process.argv.slice(2);
  await buildBundle();
  for (const out of await compile(targets.length ? targets : TARGETS)) console.log(`compiled ${path.relative(root, out)}`);
}
