/** The same full loop from Deno (mod.ts) and from the compiled binary. */
import { test } from "vitest";
import { RUNTIMES } from "./_helpers.ts";
import { fullRun } from "./loop_scenario.ts";

test("full run under deno (mod.ts)", async () => {
  await fullRun("deno");
});

test.runIf(RUNTIMES.includes("binary"))("full run under the compiled binary", async () => {
  await fullRun("binary");
});
