/**
 * A worker finishing at the same moment as the leader takes the task away:
 * exactly one of the two wins, and nothing the loser wrote is recorded.
 * Leader and worker run under different runtimes where the host has several.
 */
import { expect, test } from "vitest";
import { cliFor, ok, RUNTIMES, sqlite3, tempDb } from "./_helpers.ts";
import { plan } from "./loop_scenario.ts";

const RACES = 8;

test(`${RACES} races of a worker's done against the leader's reassign or cancel: exactly one wins`, async () => {
  const t = tempDb();
  try {
    const tasks = Array.from({ length: RACES }, (_, i) => [`T${i}`, `w${i}`] as [string, string]);
    plan(t, ...tasks);
    const outcomes: string[] = [];
    for (let i = 0; i < RACES; i++) {
      const [task, worker] = tasks[i]!;
      const leader = cliFor(t.db, RUNTIMES[(i + 1) % RUNTIMES.length]!);
      const workerCli = cliFor(t.db, RUNTIMES[i % RUNTIMES.length]!);
      ok(t.cli.orch("dispatch", "--run", "r", "--task", task, "--execution-mode", "analysis"));
      const token = ok(t.cli.inbox("claim", "--as", worker)).lease.token as string;
      const takeAway = i % 2 === 0 ? ["reassign", "--run", "r", "--task", task, "--to", `new-${worker}`] : ["cancel", "--run", "r", "--task", task];
      const [done, took] = await Promise.all([
        workerCli.inboxAsync("done", "--token", token, "--body", `finished ${task}`),
        leader.orchAsync(...takeAway),
      ]);
      const wins = [done, took].filter((r) => r.code === 0);
      expect(wins, `${task}: ${done.stdout} ${took.stdout}`).toHaveLength(1);
      const status = ok(t.cli.orch("task", "show", "--run", "r", "--task", task));
      if (done.code === 0) {
        // the worker got there first: the leader is told there is nothing to take away
        expect(took.json.error.code).toBe("invalid_state");
        expect(status.task.status).toBe("done");
        expect(status.attempts).toHaveLength(1);
        outcomes.push("done");
      } else {
        expect(done.json.error.code).toBe("lease_lost");
        expect(done.json.error.message).toMatch(i % 2 === 0 ? /was reassigned to new-w\d/ : /was cancelled by the leader/);
        expect(status.task.status).toBe(i % 2 === 0 ? "dispatched" : "cancelled");
        expect(status.attempts[0]).toMatchObject({ status: "cancelled" });
        outcomes.push(takeAway[0]!);
      }
      // the loser left no trace: no result on a thread after its cancel, no result on a cancelled attempt
      expect(sqlite3(t.db, "SELECT count(*) FROM messages m JOIN messages c ON c.thread_id = m.thread_id AND c.kind = 'cancel' WHERE m.id > c.id")).toBe("0");
      expect(sqlite3(t.db, "SELECT count(*) FROM attempts a JOIN messages m ON m.thread_id = a.thread_id AND m.kind = 'result' WHERE a.status != 'done'")).toBe("0");
    }
    // at most one active attempt per task, and one task_done event per done task
    expect(sqlite3(t.db, "SELECT count(*) FROM (SELECT task_id FROM attempts WHERE status IN ('dispatched','running','blocked') GROUP BY task_id HAVING count(*) > 1)")).toBe("0");
    expect(sqlite3(t.db, "SELECT count(*) FROM events WHERE type = 'task_done'")).toBe(String(outcomes.filter((o) => o === "done").length));
    expect(sqlite3(t.db, "PRAGMA integrity_check")).toBe("ok");
  } finally {
    t.cleanup();
  }
});
