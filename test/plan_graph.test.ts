/**
 * Big graphs: a 1,000-task run with a random acyclic dependency graph (seeded,
 * so a failure reproduces) built through the library, with `ready` checked
 * through the CLI against a reference computed here; and cycle detection on a
 * 5,000-task chain closed into a loop.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import * as path from "node:path";
import { cliFor, fails, ok, sha256File, tempDir } from "./_helpers.ts";
import { initDatabase, writeTransaction } from "../lib/storage.ts";
import { initRun } from "../lib/runs.ts";
import { addTask, setTaskStatus, type TaskStatus } from "../lib/tasks.ts";
import { addDeps } from "../lib/deps.ts";

/** mulberry32: a tiny seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = 20261128;
const N = 1000;

let dir: ReturnType<typeof tempDir>;
beforeAll(() => {
  dir = tempDir("orch-graph-");
});
afterAll(() => dir.cleanup());

describe("a 1,000-task run with a random acyclic graph", () => {
  const rand = prng(SEED);
  // ids in add order; a random permutation decides the topological order, so
  // dependencies point both to earlier- and later-added tasks
  const ids = Array.from({ length: N }, (_, i) => `t${String(i).padStart(4, "0")}`);
  const topo = [...ids];
  for (let i = topo.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [topo[i], topo[j]] = [topo[j]!, topo[i]!];
  }
  const rank = new Map(topo.map((id, i) => [id, i]));
  const deps = new Map<string, string[]>();
  let edges = 0;
  for (const id of ids) {
    const r = rank.get(id)!;
    const k = r === 0 ? 0 : Math.floor(rand() * 4); // 0-3 dependencies, all earlier in topological order
    const set = new Set<string>();
    for (let i = 0; i < k; i++) set.add(topo[Math.floor(rand() * r)]!);
    deps.set(id, [...set]);
    edges += set.size;
  }
  const status = new Map<string, TaskStatus>(ids.map((id) => [id, "pending"]));

  /** The reference: pending tasks whose dependencies are all done, in add order. */
  const reference = () => ids.filter((id) => status.get(id) === "pending" && deps.get(id)!.every((d) => status.get(d) === "done"));

  let db: string;
  let cli: ReturnType<typeof cliFor>;
  const RUN = "big";

  beforeAll(async () => {
    db = path.join(dir.dir, "big.db");
    cli = cliFor(db);
    await initDatabase(db);
    await writeTransaction(db, (tx) => {
      initRun(tx, { run: RUN, goal: "a thousand tasks" });
      for (const id of ids) addTask(tx, { run: RUN, task: id, title: `task ${id}` });
      // in reverse topological order each check walks almost nothing; the order does not change the result
      for (const id of [...topo].reverse()) if (deps.get(id)!.length > 0) addDeps(tx, RUN, id, deps.get(id)!);
    });
  });

  async function setStatuses(changes: [string, TaskStatus][]): Promise<void> {
    await writeTransaction(db, (tx) => {
      for (const [id, s] of changes) setTaskStatus(tx, RUN, id, s);
    });
    for (const [id, s] of changes) status.set(id, s);
  }

  const readyViaCli = () => ok(cli.orch("ready", "--run", RUN)).tasks.map((x: any) => x.id);

  test("the graph is what was generated, and ready equals the reference", () => {
    expect(edges).toBeGreaterThan(N); // a real graph, not a handful of edges
    const show = ok(cli.orch("run", "show", "--run", RUN));
    expect(show.counts.total).toBe(N);
    const want = reference();
    expect(want.length).toBeGreaterThan(0);
    expect(want.length).toBeLessThan(N);
    expect(readyViaCli()).toEqual(want);
    expect(show.counts.ready).toBe(want.length);
  });

  test("ready follows as tasks are done, dispatched, failed and cancelled", async () => {
    const pick = prng(SEED + 1);
    for (let round = 0; round < 6; round++) {
      const ready = reference();
      const changes: [string, TaskStatus][] = [];
      for (const id of ready) {
        const x = pick();
        if (x < 0.6) changes.push([id, "done"]);
        else if (x < 0.7) changes.push([id, "running"]);
        else if (x < 0.75) changes.push([id, round % 2 ? "failed" : "cancelled"]);
      }
      // also finish some that were running
      for (const [id, s] of status) if (s === "running" && pick() < 0.5) changes.push([id, "done"]);
      await setStatuses(changes);
      const want = reference();
      expect(readyViaCli()).toEqual(want);
    }
    const done = [...status.values()].filter((s) => s === "done").length;
    expect(done).toBeGreaterThan(100);
  });

  test("status agrees: every task's ready flag and waiting_on match the reference", () => {
    const v = ok(cli.orch("status", "--run", RUN));
    const want = new Set(reference());
    expect(v.tasks.length).toBe(N);
    expect(v.counts.ready).toBe(want.size);
    for (const task of v.tasks) {
      expect(task.ready).toBe(want.has(task.id));
      expect(task.status).toBe(status.get(task.id));
      expect(new Set(task.depends_on)).toEqual(new Set(deps.get(task.id)));
      expect(task.waiting_on.map((b: any) => b.task_id).sort()).toEqual(deps.get(task.id)!.filter((d) => status.get(d) !== "done").sort());
    }
    expect(v.next.filter((n: any) => n.action === "dispatch").map((n: any) => n.task_id)).toEqual(reference());
  });

  test("a dependency that closes a cycle in the big graph is refused naming a real cycle", () => {
    // pick a task deep in the order and one of its transitive dependencies
    const leaf = topo[N - 1]!;
    const ancestors: string[] = [];
    const seen = new Set<string>();
    const stack = [...deps.get(leaf)!];
    while (stack.length) {
      const d = stack.pop()!;
      if (seen.has(d)) continue;
      seen.add(d);
      ancestors.push(d);
      stack.push(...deps.get(d)!);
    }
    // an indirect dependency, so the cycle is longer than two (the cycle check comes before the status check)
    const target = ancestors.find((a) => !deps.get(leaf)!.includes(a))!;
    expect(target).toBeDefined();
    const before = sha256File(db);
    const e = fails(cli.orch("dep", "add", "--run", RUN, "--task", target, "--depends-on", leaf), "cycle");
    expect(sha256File(db)).toBe(before);
    const cycle: string[] = e.details.cycle;
    expect(cycle[0]).toBe(target);
    expect(cycle[1]).toBe(leaf);
    expect(cycle[cycle.length - 1]).toBe(target);
    expect(cycle.length).toBeGreaterThan(3);
    // each step is an edge of the graph (plus the one proposed)
    for (let i = 1; i < cycle.length - 1; i++) expect(deps.get(cycle[i]!)).toContain(cycle[i + 1]);
    expect(e.message).toBe(`adding ${target} -> ${leaf} would make a cycle: ${cycle.join(" -> ")}`);
  });
});

describe("cycle detection on a 5,000-task chain", () => {
  const M = 5000;
  const id = (i: number) => `c${i}`;
  let db: string;
  let cli: ReturnType<typeof cliFor>;

  beforeAll(async () => {
    db = path.join(dir.dir, "chain.db");
    cli = cliFor(db);
    await initDatabase(db);
    await writeTransaction(db, (tx) => {
      initRun(tx, { run: "chain", goal: "a long chain" });
      for (let i = 1; i <= M; i++) addTask(tx, { run: "chain", task: id(i), title: `link ${i}` });
      // c1 -> c2 -> ... -> c5000 ("depends on")
      for (let i = 1; i < M; i++) addDeps(tx, "chain", id(i), [id(i + 1)]);
    });
  });

  test("closing the chain into a loop is refused through the CLI, naming the whole cycle", () => {
    expect(ok(cli.orch("ready", "--run", "chain")).tasks.map((x: any) => x.id)).toEqual([id(M)]);
    const before = sha256File(db);
    const e = fails(cli.orch("dep", "add", "--run", "chain", "--task", id(M), "--depends-on", id(1)), "cycle");
    expect(sha256File(db)).toBe(before);
    const want = [id(M), ...Array.from({ length: M }, (_, i) => id(i + 1))];
    expect(e.details.cycle).toEqual(want);
    expect(e.message).toBe(`adding ${id(M)} -> ${id(1)} would make a cycle: ${want.join(" -> ")}`);
  });

  test("the library refuses it too, and the check walks the chain iteratively", async () => {
    await expect(writeTransaction(db, (tx) => addDeps(tx, "chain", id(M), [id(1)]))).rejects.toMatchObject({
      code: "cycle",
      details: { cycle: expect.arrayContaining([id(1), id(2500), id(M)]) },
    });
    // reversing one link in the middle closes a two-task loop (c2499 already depends on c2500)
    await expect(writeTransaction(db, (tx) => addDeps(tx, "chain", id(2500), [id(2499)]))).rejects.toMatchObject({
      code: "cycle",
      details: { cycle: [id(2500), id(2499), id(2500)] },
    });
    // a far jump that is not a cycle is fine: c1 may also depend on c5000 directly
    const r = await writeTransaction(db, (tx) => addDeps(tx, "chain", id(1), [id(M)]));
    expect(r).toEqual([{ task_id: id(1), depends_on: id(M), existed: false }]);
  });
});
