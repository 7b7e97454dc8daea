/** The same smoke scenario under the Node bundle, Deno from mod.ts and the linux-x64 binary gives identical JSON. */
import { describe, expect, test } from "vitest";
import { run, RUNTIMES, tempDir, ok } from "./_helpers.ts";
import * as path from "node:path";

/** Strips what legitimately differs between two runs (times, the db's directory). */
function normalise(value: unknown, dir: string): unknown {
  return JSON.parse(
    JSON.stringify(value)
      .replaceAll(dir, "<dir>")
      .replace(/"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/g, '"<time>"'),
  );
}

function scenario(runtime: (typeof RUNTIMES)[number]) {
  const t = tempDir();
  try {
    const db = path.join(t.dir, "coord.db");
    const inbox = (...a: string[]) => ok(run(["--db", db, "--json", ...a], { runtime, entry: "inbox" }));
    const out = [
      inbox("init"),
      inbox("send", "--to", "w1", "--body", "hello"),
      inbox("send", "--thread", "1", "--from", "w1", "--body", "hi back"),
      inbox("show", "--thread", "1"),
      inbox("list"),
    ];
    return normalise(out, t.dir);
  } finally {
    t.cleanup();
  }
}

describe("smoke under every runtime", () => {
  const reference = scenario("node");
  for (const runtime of RUNTIMES) {
    test(`init, send, show with --json under ${runtime} match the Node bundle`, () => {
      const got = scenario(runtime);
      expect(got).toEqual(reference);
      expect((got as any[])[3].messages.map((m: any) => m.body)).toEqual(["hello", "hi back"]);
    });
  }
});
