/** Builds what the CLI tests run: the Node bundle, and the linux-x64 binary where this host can run it. */
import { buildBundle } from "../scripts/build.mjs";
import { compile } from "../scripts/compile.mjs";

export default async function setup(): Promise<void> {
  await buildBundle();
  if (process.platform === "linux" && process.arch === "x64") await compile(["linux-x64"]);
}
