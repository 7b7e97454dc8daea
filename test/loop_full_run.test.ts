/** The whole analysis-mode loop through the Node bundle, as separate processes. */
import { test } from "vitest";
import { fullRun } from "./loop_scenario.ts";

test("full run under the node bundle: dispatch, claim, progress, ask --wait, wait/blocked/answer, dependent dispatch, done", async () => {
  await fullRun("node");
});
