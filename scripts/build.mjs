/**
 * Builds dist/orch.mjs: one ES module with sql.js's WASM inlined, runnable
 * by Node >= 20, Deno >= 2 and Bun with no file beside it.
 */
import { build } from "esbuild";
import { createRequire } from "node:module";
import { renameSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const wasmPath = require.resolve("sql.js/dist/sql-wasm.wasm");
const briefTemplatePath = path.join(root, "skills", "orch", "references", "worker-brief-template.md");

/**
 * Swaps the modules that read files at run time from source for modules that
 * carry the contents: lib/_wasm.ts (the SQLite WASM bytes) and
 * lib/_brief_template.ts (the default worker brief template).
 */
/** @type {import("esbuild").Plugin} */
const inlineAssets = {
  name: "inline-assets",
  setup(b) {
    b.onLoad({ filter: /[\\/]lib[\\/]_wasm\.ts$/ }, () => ({
      contents: `import bytes from ${JSON.stringify(wasmPath)};\nexport function loadSqliteWasm() { return bytes; }\n`,
      loader: "ts",
      resolveDir: root,
    }));
    b.onLoad({ filter: /[\\/]lib[\\/]_brief_template\.ts$/ }, () => ({
      contents: `import text from ${JSON.stringify(briefTemplatePath)};\nexport function loadDefaultBriefTemplate() { return text; }\n`,
      loader: "ts",
      resolveDir: root,
    }));
  },
};

/**
 * zod re-exports all of its ~50 locales through `z.locales` (about 260 KB of
 * the bundle, parsed on every start). orch writes its own messages over the
 * default English ones, so the bundle keeps English only.
 */
/** @type {import("esbuild").Plugin} */
const zodEnglishOnly = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic|core)[\\/]/.test(args.importer)
        ? { path: path.join(path.dirname(args.importer), "..", "locales", "en.js"), namespace: "zod-english-only" }
        : undefined);
    b.onLoad({ filter: /.*/, namespace: "zod-english-only" }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};\n`,
      loader: "js",
      resolveDir: path.dirname(args.path),
    }));
  },
};

export async function buildBundle(outfile = path.join(root, "dist", "orch.mjs")) {
  // build beside the target, then rename: processes running the old bundle (tests
  // of another checkout user, agents) never read a half-written file
  const tmp = `${outfile}.tmp-${process.pid}`;
  await build({
    entryPoints: [path.join(root, "cli", "bin.ts")],
    outfile: tmp,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    minify: true,
    legalComments: "none",
    loader: { ".wasm": "binary", ".md": "text" },
    plugins: [inlineAssets, zodEnglishOnly],
    // sql.js is CommonJS: it calls require() for Node built-ins and reads __dirname; an ESM bundle has neither.
    banner: {
      js: [
        "#!/usr/bin/env node",
        'import { createRequire as __orchRequire } from "node:module";',
        'import { fileURLToPath as __orchPath } from "node:url";',
        "const require = __orchRequire(import.meta.url);",
        "const __filename = __orchPath(import.meta.url);",
        'const __dirname = __filename.replace(/[\\\\/][^\\\\/]*$/, "");',
      ].join("\n"),
    },
    logLevel: "warning",
  });
  renameSync(tmp, outfile);
  return outfile;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const out = await buildBundle();
  console.log(`built ${path.relative(root, out)}`);
}
