/**
 * Bundles TypeScript that imports lib/ into one ES module Node 20 can import
 * (Node 20 cannot load .ts). sql.js is CommonJS and finds its WASM file
 * through require() and __dirname, so the bundle gets both, pointing at the
 * installed package. Used by the benchmark scripts for their fixtures.
 *
 * options: { entry?: string, stdin?: { contents, sourcefile }, outfile: string }
 */
import { build } from "esbuild";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export async function bundleLibForNode({ entry, stdin, outfile }) {
  await build({
    ...(entry ? { entryPoints: [entry] } : { stdin: { ...stdin, resolveDir: root, loader: "ts" } }),
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    banner: {
      js: [
        'import { createRequire as __benchRequire } from "node:module";',
        "const require = __benchRequire(import.meta.url);",
        `const __dirname = ${JSON.stringify(path.join(root, "node_modules", "sql.js", "dist"))};`,
      ].join("\n"),
    },
    logLevel: "warning",
  });
  return outfile;
}
