/** Bad input to the loop commands: a clear error code and message, and the database file's bytes unchanged. */
import { expect, test } from "vitest";
import { existsSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fails, ok, run, sha256File, tempDb } from "./_helpers.ts";

test("bad input is refused with a clear error and changes nothing", () => {
  const t = tempDb();
  try {
    const { orch, inbox } = t.cli;
    ok(orch("run", "init", "--run", "r", "--goal", "bad input"));
    ok(orch("task", "add", "--run", "r", "--task", "A", "--title", "first", "--default-to", "w1"));
    ok(orch("task", "add", "--run", "r", "--task", "B", "--title", "after A", "--default-to", "w2"));
    ok(orch("task", "add", "--run", "r", "--task", "N", "--title", "nobody's"));
    ok(orch("dep", "add", "--run", "r", "--task", "B", "--depends-on", "A"));
    const dA = ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
    const tok = ok(inbox("claim", "--as", "w1")).lease.token as string;
    ok(inbox("ask", "--token", tok, "--body", "May I?"));
    const big = path.join(t.dir, "big.txt");
    writeFileSync(big, "x".repeat(70 * 1024));
    const bigJson = JSON.stringify({ blob: "y".repeat(70 * 1024) });
    const unknownToken = "0123456789abcdef0123456789abcdef";
    const thread = String(dA.attempt.thread_id);

    const sum = sha256File(t.db);
    const cases: [string, () => ReturnType<typeof orch>, string, RegExp?][] = [
      // unknown things
      ["claim unknown thread", () => inbox("claim", "--as", "w1", "--thread", "999"), "not_found", /thread 999 does not exist/],
      ["show unknown thread", () => inbox("show", "--thread", "999"), "not_found", /thread 999/],
      ["wait on unknown thread", () => inbox("wait", "--as", "w1", "--thread", "999", "--timeout-seconds", "0"), "not_found", /thread 999/],
      ["dispatch unknown task", () => orch("dispatch", "--run", "r", "--task", "Z", "--execution-mode", "analysis", "--to", "w"), "not_found", /task Z does not exist in run r/],
      ["dispatch in unknown run", () => orch("dispatch", "--run", "nope", "--task", "A", "--execution-mode", "analysis"), "not_found", /run nope does not exist/],
      ["answer unknown task", () => orch("answer", "--run", "r", "--task", "Z", "--body", "x"), "not_found", /task Z/],
      ["retry unknown task", () => orch("retry", "--run", "r", "--task", "Z"), "not_found", /task Z/],
      ["reassign unknown task", () => orch("reassign", "--run", "r", "--task", "Z", "--to", "w"), "not_found", /task Z/],
      ["cancel unknown task", () => orch("cancel", "--run", "r", "--task", "Z"), "not_found", /task Z/],
      ["reconcile unknown run", () => orch("reconcile", "--run", "nope"), "not_found", /run nope/],
      ["blocked unknown run", () => orch("blocked", "--run", "nope"), "not_found", /run nope/],
      // tokens
      ["malformed token", () => inbox("progress", "--token", "abc", "--body", "x"), "usage", /--token: must be the 32-character lease token/],
      ["missing token", () => inbox("heartbeat"), "usage", /--token/],
      ["unknown token", () => inbox("progress", "--token", unknownToken, "--body", "x"), "lease_lost", /token is not known/],
      ["unknown token on done", () => inbox("done", "--token", unknownToken, "--body", "x"), "lease_lost", /token is not known/],
      // wrong state
      ["answer a task that is not blocked", () => orch("answer", "--run", "r", "--task", "N", "--body", "x"), "invalid_state", /task N is not blocked \(it is pending\)/],
      ["dispatch a task that is not ready", () => orch("dispatch", "--run", "r", "--task", "B", "--execution-mode", "analysis"), "not_ready", /task B is not ready: waiting on A \(blocked\)/],
      ["dispatch an active task", () => orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"), "invalid_state", /task A cannot be dispatched: it already has an active attempt \(blocked\)/],
      ["dispatch with neither --to nor --default-to", () => orch("dispatch", "--run", "r", "--task", "N", "--execution-mode", "analysis"), "usage", /task N has no default worker; give dispatch --to WORKER/],
      ["retry an active task", () => orch("retry", "--run", "r", "--task", "A"), "invalid_state", /cannot be retried: it is blocked/],
      ["reassign a task with no attempt", () => orch("reassign", "--run", "r", "--task", "N", "--to", "w"), "invalid_state", /no active attempt/],
      ["claim someone else's thread", () => inbox("claim", "--as", "w2", "--thread", thread), "invalid_state", /addressed to w1, not w2/],
      ["claim a claimed thread", () => inbox("claim", "--as", "w1", "--thread", thread), "already_claimed", /already claimed by w1/],
      ["claim with nothing addressed", () => inbox("claim", "--as", "w7"), "not_found", /no open thread is addressed to w7/],
      // malformed JSON flags
      ["malformed --result-json", () => inbox("done", "--token", tok, "--body", "x", "--result-json", "{bad"), "usage", /--result-json is not valid JSON/],
      ["--result-json array", () => inbox("done", "--token", tok, "--body", "x", "--result-json", "[1,2]"), "usage", /--result-json must be a JSON object/],
      ["--result-json too big", () => inbox("done", "--token", tok, "--body", "x", "--result-json", bigJson), "usage", /--result-json is longer than the limit/],
      ["malformed --payload-json on answer", () => orch("answer", "--run", "r", "--task", "A", "--body", "x", "--payload-json", "{bad"), "usage", /--payload-json is not valid JSON/],
      ["--payload-json null on answer", () => orch("answer", "--run", "r", "--task", "A", "--body", "x", "--payload-json", "null"), "usage", /--payload-json must be a JSON object/],
      ["malformed --payload-json on progress", () => inbox("progress", "--token", tok, "--body", "x", "--payload-json", "nope"), "usage", /--payload-json is not valid JSON/],
      // bodies
      ["oversized progress body", () => inbox("progress", "--token", tok, "--body-file", big), "usage", /--body: body is longer than the limit of 65536 bytes/],
      ["oversized question", () => inbox("ask", "--token", tok, "--body-file", big), "usage", /longer than the limit/],
      ["oversized result", () => inbox("done", "--token", tok, "--body-file", big), "usage", /longer than the limit/],
      ["oversized answer", () => orch("answer", "--run", "r", "--task", "A", "--body-file", big), "usage", /longer than the limit/],
      ["oversized assignment", () => orch("dispatch", "--run", "r", "--task", "N", "--execution-mode", "analysis", "--to", "w", "--body-file", big), "usage", /longer than the limit/],
      ["oversized cancel message", () => orch("cancel", "--run", "r", "--task", "A", "--body-file", big), "usage", /longer than the limit/],
      ["empty body", () => inbox("progress", "--token", tok, "--body", "   "), "usage", /must not be empty/],
      ["missing body", () => inbox("done", "--token", tok), "usage", /--body TEXT or --body-file PATH/],
      ["answer without a body", () => orch("answer", "--run", "r", "--task", "A"), "usage", /--body/],
      ["both --body and --body-file", () => inbox("progress", "--token", tok, "--body", "x", "--body-file", big), "usage", /not both/],
      ["missing body file", () => inbox("progress", "--token", tok, "--body-file", path.join(t.dir, "nope.txt")), "usage", /no such file/],
      // flags
      ["bad execution mode", () => orch("dispatch", "--run", "r", "--task", "N", "--execution-mode", "fast", "--to", "w"), "usage", /--execution-mode: must be analysis or code/],
      ["missing execution mode", () => orch("dispatch", "--run", "r", "--task", "N", "--to", "w"), "usage", /--execution-mode/],
      ["bad worker id", () => orch("dispatch", "--run", "r", "--task", "N", "--execution-mode", "analysis", "--to", "../evil"), "usage", /--to/],
      ["reassign without --to", () => orch("reassign", "--run", "r", "--task", "A"), "usage", /--to/],
      ["lease of zero seconds", () => inbox("claim", "--as", "w1", "--lease-seconds", "0"), "usage", /--lease-seconds must be between 1/],
      ["lease not a number", () => inbox("claim", "--as", "w1", "--lease-seconds", "soon"), "usage", /--lease-seconds must be a whole number/],
      ["claim without --as", () => inbox("claim"), "usage", /--as/],
      ["inbox wait without --as", () => inbox("wait", "--timeout-seconds", "0"), "usage", /--as/],
      ["orch wait for an unknown event type", () => orch("wait", "--run", "r", "--for", "task_exploded"), "usage", /unknown event type "task_exploded"/],
      ["ask --wait with a bad timeout", () => inbox("ask", "--token", tok, "--body", "x", "--wait", "--timeout-seconds", "-1"), "usage", /--timeout-seconds/],
    ];
    for (const [what, call, code, message] of cases) {
      const r = call();
      let err: any;
      try {
        err = fails(r, code);
      } catch (e) {
        throw new Error(`${what}: ${(e as Error).message}`);
      }
      if (message) expect(err.message, what).toMatch(message);
      expect(sha256File(t.db), `${what} changed the database`).toBe(sum);
    }
    expect(existsSync(`${t.db}.lock`)).toBe(false);

    // the not_ready error carries what it waits on, and reads well as text too
    expect(fails(orch("dispatch", "--run", "r", "--task", "B", "--execution-mode", "analysis"), "not_ready").details).toEqual({ waiting_on: [{ task_id: "A", status: "blocked" }] });
    const text = run(["--db", t.db, "dispatch", "--run", "r", "--task", "B", "--execution-mode", "analysis"]);
    expect(text.code).toBe(4);
    expect(text.stdout).toBe("");
    expect(text.stderr).toMatch(/^error \[not_ready\]: task B is not ready: waiting on A \(blocked\)\nhint: /);

    // reads stay reads: status/blocked with nothing to fold do not write either
    expect(ok(orch("status", "--run", "r")).tasks.map((x: any) => x.status)).toEqual(["blocked", "pending", "pending"]);
    expect(ok(orch("blocked", "--run", "r")).blocked[0].question.body).toBe("May I?");
    expect(sha256File(t.db)).toBe(sum);
    // and the blocked task can still be answered properly afterwards
    ok(orch("answer", "--run", "r", "--task", "A", "--body", "Yes.", "--payload-json", '{"go":true}'));
    expect(sha256File(t.db)).not.toBe(sum);
  } finally {
    t.cleanup();
  }
});
