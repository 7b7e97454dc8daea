/**
 * Assembles the copyable skill folders dist/skills/orch and dist/skills/inbox:
 * each gets its SKILL.md (and references/), and assets/ with the launchers,
 * the single-file bundle orch.mjs (the JavaScript-runtime fallback) and bin/
 * with one binary per host plus SHA256SUMS. Binaries are hard-linked from
 * dist/bin where the file system allows (they are ~100 MB each), else copied;
 * `cp -a` keeps the links when the folders are copied on together.
 *
 * Usage: node scripts/package.mjs [--targets linux-x64,...] [--out DIR]
 *   builds the bundle, compiles the targets (default: all), then assembles.
 */
import { chmodSync, copyFileSync, cpSync, existsSync, linkSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { buildBundle } from "./build.mjs";
import { binDir as defaultBinDir, binaryName, compile, TARGETS, writeChecksums } from "./compile.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const SKILLS = ["orch", "inbox"];
export const LAUNCHERS = ["orch", "inbox", "orch-worker-brief"];
export const skillsOut = path.join(root, "dist", "skills");

function linkOrCopy(from, to) {
  try {
    linkSync(from, to);
  } catch {
    // another file system, or one without hard links
    copyFileSync(from, to);
  }
}

/**
 * Writes the skill folders into `outDir` from skills/, the bundle and the
 * binaries of `targets` found in `binDir`. `targets: []` makes a package with
 * no binaries (its launchers always use a JavaScript runtime).
 */
export function packageSkills({ outDir = skillsOut, binDir = defaultBinDir, bundle = path.join(root, "dist", "orch.mjs"), targets = TARGETS } = {}) {
  if (!existsSync(bundle)) throw new Error(`no bundle at ${bundle}: run npm run build first`);
  const missing = targets.filter((t) => !existsSync(path.join(binDir, binaryName(t))));
  if (missing.length) throw new Error(`no binary for ${missing.join(", ")} in ${binDir}: run npm run compile first`);
  const made = [];
  for (const skill of SKILLS) {
    const dest = path.join(outDir, skill);
    rmSync(dest, { recursive: true, force: true });
    cpSync(path.join(root, "skills", skill), dest, { recursive: true, filter: (src) => path.basename(src) !== ".gitattributes" });
    const assets = path.join(dest, "assets");
    for (const name of LAUNCHERS) {
      if (!existsSync(path.join(assets, name)) || !existsSync(path.join(assets, `${name}.cmd`))) throw new Error(`skills/${skill}/assets/${name} (and .cmd) must exist`);
      chmodSync(path.join(assets, name), 0o755);
    }
    copyFileSync(bundle, path.join(assets, "orch.mjs"));
    if (targets.length > 0) {
      const bin = path.join(assets, "bin");
      mkdirSync(bin, { recursive: true });
      for (const t of targets) {
        const to = path.join(bin, binaryName(t));
        linkOrCopy(path.join(binDir, binaryName(t)), to);
        if (!t.startsWith("windows")) chmodSync(to, 0o755);
      }
      writeChecksums(bin);
    }
    made.push(dest);
  }
  return made;
}

/** Sum of file sizes under a directory, counting each hard-linked file once. */
export function packageSize(dir) {
  const seen = new Set();
  let total = 0;
  const walk = (p) => {
    const st = statSync(p);
    if (st.isDirectory()) return readdirSync(p).forEach((e) => walk(path.join(p, e)));
    if (seen.has(st.ino)) return;
    seen.add(st.ino);
    total += st.size;
  };
  walk(dir);
  return total;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const flag = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const targets = flag("--targets")?.split(",").filter(Boolean) ?? TARGETS;
  const outDir = path.resolve(flag("--out") ?? skillsOut);
  await buildBundle();
  await compile(targets);
  for (const dir of packageSkills({ outDir, targets })) {
    console.log(`packaged ${path.relative(root, dir) || dir} (${(packageSize(dir) / 1e6).toFixed(0)} MB)`);
  }
}
