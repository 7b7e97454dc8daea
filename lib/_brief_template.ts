/**
 * Where the default worker brief template comes from. From source it is read
 * out of skills/orch/references/ (the file users copy and edit); the build
 * (scripts/build.mjs) swaps this module for one that inlines the text, so the
 * bundle and the binaries need no file beside them.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export function loadDefaultBriefTemplate(): string {
  return readFileSync(fileURLToPath(new URL("../skills/orch/references/worker-brief-template.md", import.meta.url)), "utf8");
}
