/** `npm run demo` (after its build step) plays the whole loop and ends with the final status. */
import { expect, test } from "vitest";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { ROOT } from "./_helpers.ts";

test("the demo plays the full loop and prints the final status", () => {
  const r = spawnSync(process.execPath, [path.join(ROOT, "scripts", "demo.mjs")], { encoding: "utf8", timeout: 120_000, env: { ...process.env, NO_COLOR: "1" } });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  const out = r.stdout;
  for (const step of [/dispatch logs -> worker-a/, /claimed thread/, /progress: /, /asks: .*inbox ask --wait/, /triage is blocked/, /answer triage/, /got the answer/, /dispatch report -> worker-c/, /report is done/, /dispatch fix -> worker-d \(code/, /worktree .*fix-a1 on branch orch\/flaky-ci\/fix\/a1/, /worker-d .*done: committed [0-9a-f]+ on orch\/flaky-ci\/fix\/a1/, /cleanup removed .*fix-a1 \(\d+ bytes\)/, /kept branch orch\/flaky-ci\/fix\/a1: it has 1 commit/]) {
    expect(out).toMatch(step);
  }
  const final = out.slice(out.indexOf("final state: orch status"));
  expect(final).toMatch(/run flaky-ci done/);
  expect(final).toMatch(/tasks: 4 · done 4/);
  expect(final).toMatch(/next:\n {2}done: every task is done/);
});
