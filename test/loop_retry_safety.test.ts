/**
 * Retry-safety of the loop: what an agent gets when it repeats a command after
 * a timeout, and what a stale worker can no longer do by other routes.
 */
import { afterEach, expect, test } from "vitest";
import { fails, ok, sha256File, sqlite3, tempDb } from "./_helpers.ts";
import { waitForMessages } from "../lib/wait.ts";

const temps: ReturnType<typeof tempDb>[] = [];
afterEach(() => {
  while (temps.length) temps.pop()!.cleanup();
});

function setup() {
  const t = tempDb();
  temps.push(t);
  ok(t.cli.orch("run", "init", "--run", "r", "--goal", "retry safety"));
  ok(t.cli.orch("task", "add", "--run", "r", "--task", "A", "--title", "First", "--default-to", "w1"));
  return t;
}

/** Adds `n` messages to a thread straight into the file (faster than n CLI calls; the file is plain SQLite). */
function bulkMessages(db: string, thread: number, n: number, kind: string, from: string, to: string): void {
  sqlite3(
    db,
    `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n})
     INSERT INTO messages (thread_id, kind, sender, recipient, body, created_at)
     SELECT ${thread}, '${kind}', '${from}', '${to}', 'bulk ' || x, 0 FROM c`,
  );
}

test("retry refuses a cancelled task that never started while it still waits on its dependencies", () => {
  const t = setup();
  const { orch } = t.cli;
  ok(orch("task", "add", "--run", "r", "--task", "B", "--title", "Second", "--default-to", "w1"));
  ok(orch("dep", "add", "--run", "r", "--task", "B", "--depends-on", "A"));
  ok(orch("cancel", "--run", "r", "--task", "B"));
  const sum = sha256File(t.db);
  const err = fails(orch("retry", "--run", "r", "--task", "B"), "not_ready");
  expect(err.message).toMatch(/waiting on A \(pending\)/);
  expect(sha256File(t.db)).toBe(sum);
  // once A is done, B can be brought back with retry
  const d = ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
  const tok = ok(t.cli.inbox("claim", "--as", "w1", "--thread", String(d.attempt.thread_id))).lease.token;
  ok(t.cli.inbox("done", "--token", tok, "--body", "done"));
  expect(ok(orch("retry", "--run", "r", "--task", "B")).attempt).toMatchObject({ number: 1, status: "dispatched" });
});

test("inbox send cannot change an attempt's state: a stale worker cannot fail or finish its successor's attempt", () => {
  const t = setup();
  const { orch, inbox } = t.cli;
  const d1 = ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
  ok(inbox("claim", "--as", "w1", "--thread", String(d1.attempt.thread_id)));
  const d2 = ok(orch("reassign", "--run", "r", "--task", "A", "--to", "w2"));
  const tok2 = ok(inbox("claim", "--as", "w2", "--thread", String(d2.attempt.thread_id))).lease.token;
  const sum = sha256File(t.db);
  for (const kind of ["failure", "result", "question", "answer", "cancel"]) {
    for (const thread of [d1.attempt.thread_id, d2.attempt.thread_id]) {
      const err = fails(inbox("send", "--thread", String(thread), "--from", "w1", "--kind", kind, "--body", "stale"), "invalid_state");
      expect(err.message).toMatch(/belongs to an attempt/);
    }
  }
  expect(sha256File(t.db)).toBe(sum);
  // notes are still fine, and the successor keeps working
  ok(inbox("send", "--thread", String(d2.attempt.thread_id), "--from", "leader", "--body", "FYI: logs are in /tmp/ci"));
  ok(inbox("progress", "--token", tok2, "--body", "still mine"));
  expect(ok(orch("task", "show", "--run", "r", "--task", "A")).task.status).toBe("running");
});

test("answer replies to the latest question however long the thread; claim shows the assignment and the latest messages", () => {
  const t = setup();
  const { orch, inbox } = t.cli;
  const d = ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
  const thread = d.attempt.thread_id as number;
  const tok = ok(inbox("claim", "--as", "w1", "--thread", String(thread))).lease.token;
  ok(inbox("ask", "--token", tok, "--body", "Q1"));
  ok(orch("answer", "--run", "r", "--task", "A", "--body", "A1"));
  bulkMessages(t.db, thread, 1200, "progress", "w1", "leader");
  const q2 = ok(inbox("ask", "--token", tok, "--body", "Q2")).message;
  const a = ok(orch("answer", "--run", "r", "--task", "A", "--body", "A2"));
  expect(a.question).toMatchObject({ id: q2.id, body: "Q2" });
  // give the thread back and claim it again: the assignment and the newest messages, flagged as cut
  ok(inbox("release", "--token", tok));
  const c = ok(inbox("claim", "--as", "w1", "--thread", String(thread)));
  expect(c.messages[0].kind).toBe("assignment");
  expect(c.messages.slice(-2).map((m: any) => m.body)).toEqual(["Q2", "A2"]);
  expect(c.messages_truncated).toBe(true);
  expect(c.messages.length).toBeLessThan(c.thread.message_count);
  const ids = c.messages.map((m: any) => m.id);
  expect([...ids].sort((x, y) => x - y)).toEqual(ids);
});

test("reassign to the worker that already has the task is refused, so a repeated reassign cannot cancel the new attempt", () => {
  const t = setup();
  const { orch, inbox } = t.cli;
  ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
  const d2 = ok(orch("reassign", "--run", "r", "--task", "A", "--to", "w2"));
  const tok2 = ok(inbox("claim", "--as", "w2", "--thread", String(d2.attempt.thread_id))).lease.token;
  const sum = sha256File(t.db);
  const err = fails(orch("reassign", "--run", "r", "--task", "A", "--to", "w2"), "invalid_state");
  expect(err.message).toMatch(/already assigned to w2 \(attempt 2/);
  expect(sha256File(t.db)).toBe(sum);
  ok(inbox("progress", "--token", tok2, "--body", "undisturbed"));
});

test("a waiter for an answer is not hidden by many other messages addressed to the same worker", async () => {
  const t = setup();
  const { orch, inbox } = t.cli;
  const d = ok(orch("dispatch", "--run", "r", "--task", "A", "--execution-mode", "analysis"));
  const thread = d.attempt.thread_id as number;
  const tok = ok(inbox("claim", "--as", "w1", "--thread", String(thread))).lease.token;
  const q = ok(inbox("ask", "--token", tok, "--body", "Which database?")).message;
  bulkMessages(t.db, thread, 700, "note", "leader", "w1");
  ok(orch("answer", "--run", "r", "--task", "A", "--body", "Postgres"));
  const r = await waitForMessages(t.db, { worker: "w1", thread, after: q.id, kinds: ["answer", "cancel"], timeoutMs: 5000 });
  expect(r.timed_out).toBe(false);
  expect(r.messages.map((m) => m.body)).toEqual(["Postgres"]);
});
