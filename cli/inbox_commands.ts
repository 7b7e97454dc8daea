/** `inbox` commands: init, send/list/show for inspection, and the worker's lease-guarded verbs. */
import type { Command } from "commander";
import { act } from "./main.ts";
import { bodyFrom, type CommandResult, type Context, intOption } from "./_context.ts";
import { initDatabase } from "../lib/storage.ts";
import * as inbox from "../lib/inbox.ts";
import { bodySchema, check, idSchema, parseJsonArg } from "../lib/validate.ts";
import { waitForMessages } from "../lib/wait.ts";
import { OrchError } from "../lib/errors.ts";
import { kv, oneLine, paint, relative, status, table } from "./_format.ts";
import { z } from "zod";

const threadId = (v: string | undefined, flag = "--thread") => intOption(v, flag, 1, Number.MAX_SAFE_INTEGER);
const tokenSchema = z.string().regex(/^[0-9a-f]{32}$/, { message: "must be the 32-character lease token printed by `inbox claim`" });
const kindSchema = z.enum(inbox.MESSAGE_KINDS, { message: `must be one of ${inbox.MESSAGE_KINDS.join(", ")}` });
const MAX_WAIT_SECONDS = 86_400;

function threadLine(t: inbox.Thread): string[] {
  return [
    String(t.id),
    status(t.status),
    t.assigned_to ?? "-",
    t.lease ? `${t.lease.worker}, ${relative(t.lease.expires_at)}` : "-",
    t.run_id ? `${t.run_id}/${t.task_id}` : "-",
    String(t.message_count),
    oneLine(t.subject, 50),
  ];
}

function renderMessages(messages: readonly inbox.Message[]): string {
  return messages
    .map((m) => `${paint("dim", `#${m.id} ${m.created_at}`)} ${paint("bold", m.kind)} ${m.from} -> ${m.to ?? "-"}\n${m.body.replace(/^/gm, "  ")}${m.payload !== null ? `\n  ${paint("dim", `payload: ${JSON.stringify(m.payload)}`)}` : ""}`)
    .join("\n");
}

function workerWriteResult(r: inbox.WorkerWriteResult, what: string): CommandResult {
  const lease = r.lease ? `lease until ${r.lease.expires_at} (${relative(r.lease.expires_at)})` : "no lease";
  return { data: { ...r }, text: `${what} on thread ${r.thread.id} (${r.thread.status}); ${lease}` };
}

const tokenOf = (o: { token?: string }) => check(tokenSchema, o.token, "--token");
const payloadOf = (o: { payloadJson?: string }, flag = "--payload-json") =>
  o.payloadJson === undefined ? undefined : parseJsonArg(flag, o.payloadJson);
const bodyOf = (o: { body?: string; bodyFile?: string }) => check(bodySchema(), bodyFrom(o, true), "--body");

export function registerInbox(program: Command): void {
  act(
    program.command("init").description("create the database (or migrate an older one); running it again keeps all data")
      .addHelpText("after", `
Output (--json): {"ok": true, "db": PATH, "created": bool, "migrated_from": N|null, "schema_version": N}

Example:
  inbox --db ./coord.db --json init`),
    async (_o, ctx) => {
      const r = await initDatabase(ctx.dbPath, ctx.store);
      const { path, ...rest } = r;
      const what = r.created ? "created" : r.migrated_from !== null ? `migrated from schema ${r.migrated_from}` : "already initialised";
      return { data: { db: path, ...rest }, text: `${path}: ${what} (schema version ${r.schema_version})` };
    },
  );

  act(
    program.command("send").description("post a message: on a new free-standing thread (--to), or as a reply on an existing one (--thread)")
      .option("--thread <id>", "reply on this thread instead of starting a new one")
      .option("--to <worker>", "recipient; for a new thread, the worker it is addressed to")
      .option("--from <name>", "sender name", "leader")
      .option("--subject <text>", "subject of a new thread (default: the body's first line)")
      .option("--kind <kind>", `message kind: ${inbox.MESSAGE_KINDS.join(", ")}`, "note")
      .option("--body <text>", "message text")
      .option("--body-file <path>", "read the message text from a file")
      .option("--payload-json <json>", "structured payload (a JSON object)")
      .addHelpText("after", `
A message of kind result, failure, question, answer or cancel on an attempt's
thread is folded into the task's state at once (a manual repair); prefer the
worker verbs (done, fail, ask) and \`orch answer\` for routine work.

Output (--json): {"ok": true, "thread": {...}, "message": {"id", "thread_id", "kind", "from", "to", "body", "payload", "created_at"}, "created_thread": bool}

Examples:
  inbox --db ./coord.db --json send --to qa-worker --body "Please look at the flaky test logs."
  inbox --db ./coord.db --json send --thread 3 --from leader --body "Also check CI run 42."`),
    async (o, ctx) => {
      const body = bodyOf(o);
      const input: inbox.SendInput = {
        thread: threadId(o.thread),
        to: o.to === undefined ? undefined : check(idSchema("--to"), o.to, "--to"),
        from: check(idSchema("--from"), o.from, "--from"),
        subject: o.subject,
        kind: check(kindSchema, o.kind, "--kind"),
        body,
        payload: payloadOf(o),
      };
      const r = await ctx.write((db) => inbox.send(db, input));
      return { data: { ...r }, text: `message ${r.message.id} posted on thread ${r.thread.id}${r.created_thread ? " (new thread)" : ""}` };
    },
  );

  act(
    program.command("list").description("list threads, newest last")
      .option("--to <worker>", "only threads addressed to this worker")
      .option("--run <id>", "only threads of this run")
      .option("--status <status>", "only threads in this state: open, claimed, closed")
      .option("--limit <n>", "at most this many (newest), default 100")
      .addHelpText("after", `
Output (--json): {"ok": true, "threads": [{"id", "run_id", "task_id", "attempt_id", "subject", "assigned_to", "status", "lease", "message_count", "last_message_id", ...}]}`),
    async (o, ctx) => {
      const filter: inbox.ListFilter = {
        to: o.to === undefined ? undefined : check(idSchema("--to"), o.to, "--to"),
        run: o.run === undefined ? undefined : check(idSchema("--run"), o.run, "--run"),
        status: o.status === undefined ? undefined : check(z.enum(["open", "claimed", "closed"]), o.status, "--status"),
        limit: intOption(o.limit, "--limit", 1, 10_000),
      };
      const threads = await ctx.read((db) => inbox.listThreads(db, filter));
      return {
        data: { threads },
        text: threads.length === 0 ? "no threads" : table(["THREAD", "STATUS", "TO", "LEASE", "TASK", "MSGS", "SUBJECT"], threads.map(threadLine)),
      };
    },
  );

  act(
    program.command("show").description("show a thread and its messages")
      .option("--thread <id>", "the thread to show (required)")
      .option("--after <message-id>", "only messages after this id", "0")
      .addHelpText("after", `
Output (--json): {"ok": true, "thread": {...}, "messages": [{"id", "kind", "from", "to", "body", "payload", "created_at"}]}`),
    async (o, ctx) => {
      const id = threadId(o.thread);
      if (id === undefined) throw new OrchError("usage", "give --thread ID");
      const after = intOption(o.after, "--after", 0, Number.MAX_SAFE_INTEGER)!;
      const r = await ctx.read((db) => inbox.showThread(db, id, after));
      const t = r.thread;
      const head = kv([
        ["thread", `${t.id} (${status(t.status)})`],
        ["subject", t.subject],
        ["to", t.assigned_to],
        ["task", t.run_id ? `${t.run_id}/${t.task_id} attempt id ${t.attempt_id}` : "-"],
        ["lease", t.lease ? `${t.lease.worker} until ${t.lease.expires_at}` : "-"],
      ]);
      return { data: { ...r }, text: `${head}\n\n${renderMessages(r.messages) || "no messages"}` };
    },
  );

  act(
    program.command("claim").description("claim a thread and get a lease token (by --thread, or the oldest open thread addressed to --as)")
      .option("--as <worker>", "your worker name (required)")
      .option("--thread <id>", "the thread to claim (default: the oldest open one addressed to you)")
      .option("--lease-seconds <s>", `lease length; progress and heartbeat extend it (default ${inbox.DEFAULT_LEASE_SECONDS})`)
      .addHelpText("after", `
Exactly one of several simultaneous claimers wins; the others get already_claimed.
Keep the printed lease token: every later write (heartbeat, progress, ask, done,
fail, release) needs it as --token.

Output (--json): {"ok": true, "thread": {...}, "lease": {"token", "worker", "claimed_at", "expires_at", "seconds"}, "messages": [...the assignment...]}

Example:
  inbox --db ./coord.db --json claim --as qa-worker --thread 3`),
    async (o, ctx) => {
      if (o.as === undefined) throw new OrchError("usage", "give --as WORKER (your worker name)");
      const input: inbox.ClaimInput = {
        worker: check(idSchema("--as"), o.as, "--as"),
        thread: threadId(o.thread),
        leaseSeconds: intOption(o.leaseSeconds, "--lease-seconds", 1, MAX_WAIT_SECONDS),
      };
      const r = await ctx.write((db) => inbox.claim(db, input));
      const assignment = r.messages.find((m) => m.kind === "assignment");
      const text = [
        `claimed thread ${r.thread.id} as ${r.lease.worker}`,
        `lease token: ${r.lease.token}`,
        `lease expires: ${r.lease.expires_at} (${relative(r.lease.expires_at)})`,
        assignment ? `\n${renderMessages([assignment])}` : "",
      ].join("\n");
      return { data: { ...r }, text };
    },
  );

  act(
    program.command("heartbeat").description("extend your lease without posting a message")
      .option("--token <token>", "your lease token (required)")
      .option("--lease-seconds <s>", "new lease length from now (default: the claim's length)")
      .addHelpText("after", `
Fails with lease_lost (exit 5) if the attempt was cancelled, reassigned, released or expired.

Output (--json): {"ok": true, "thread": {...}, "lease": {...}}`),
    async (o, ctx) => {
      const token = tokenOf(o);
      const seconds = intOption(o.leaseSeconds, "--lease-seconds", 1, MAX_WAIT_SECONDS);
      return workerWriteResult(await ctx.write((db) => inbox.heartbeat(db, token, seconds)), "lease extended");
    },
  );

  const workerVerb = (name: string, description: string, payloadFlag = "--payload-json") => {
    const cmd = program.command(name).description(description)
      .option("--token <token>", "your lease token (required)")
      .option("--body <text>", "message text")
      .option("--body-file <path>", "read the message text from a file");
    cmd.option(`${payloadFlag} <json>`, "structured payload (a JSON object)");
    return cmd;
  };

  act(
    workerVerb("progress", "report progress (extends the lease)").addHelpText("after", `
Output (--json): {"ok": true, "thread": {...}, "lease": {...}, "message": {...}}

Example:
  inbox --db ./coord.db --json progress --token TOKEN --body "Parsed the logs; 3 failures share a timeout."`),
    async (o, ctx) => {
      const token = tokenOf(o);
      const body = bodyOf(o);
      const payload = payloadOf(o);
      return workerWriteResult(await ctx.write((db) => inbox.progress(db, token, body, payload)), "progress posted");
    },
  );

  act(
    workerVerb("ask", "ask the leader a question; the task is blocked until it is answered")
      .option("--wait", "wait for the answer in this same command")
      .option("--timeout-seconds <s>", "with --wait: give up after this long (default 600)")
      .addHelpText("after", `
With --wait the command returns when the leader answers (or cancels the
attempt), or when the timeout passes: "answer" is then null and "timed_out"
true; wait again later with \`inbox wait --as WORKER --thread ID --after MESSAGE_ID\`.

Output (--json): {"ok": true, "thread": {...}, "lease": {...}, "message": {...the question...},
                  "answer": {...}|null, "timed_out": bool}   (answer/timed_out with --wait only)

Example:
  inbox --db ./coord.db --json ask --token TOKEN --body "Support drafts?" --wait --timeout-seconds 900`),
    async (o, ctx) => {
      const token = tokenOf(o);
      const body = bodyOf(o);
      const payload = payloadOf(o);
      const timeout = intOption(o.timeoutSeconds, "--timeout-seconds", 0, MAX_WAIT_SECONDS) ?? 600;
      const asked = await ctx.write((db) => inbox.ask(db, token, body, payload));
      if (!o.wait) return workerWriteResult(asked, `question ${asked.message!.id} posted; task blocked`);
      const worker = asked.lease!.worker;
      const w = await waitForMessages(ctx.dbPath, {
        worker,
        thread: asked.thread.id,
        after: asked.message!.id,
        kinds: ["answer", "cancel"],
        timeoutMs: timeout * 1000,
      });
      const reply = w.messages[0] ?? null;
      const text = reply
        ? `${reply.kind === "cancel" ? "cancelled" : "answer"} (message ${reply.id}):\n${reply.body}${reply.payload ? `\npayload: ${JSON.stringify(reply.payload)}` : ""}`
        : `no answer within ${timeout}s; wait again with: inbox wait --as ${worker} --thread ${asked.thread.id} --after ${asked.message!.id}`;
      return { data: { ...asked, answer: reply, timed_out: w.timed_out }, text };
    },
  );

  act(
    program.command("wait").description("wait for messages addressed to you (answers, cancellations, notes) after a cursor")
      .option("--as <worker>", "your worker name (required)")
      .option("--thread <id>", "only this thread")
      .option("--after <message-id>", "only messages after this id", "0")
      .option("--timeout-seconds <s>", "give up after this long (default 600)")
      .addHelpText("after", `
Output (--json): {"ok": true, "messages": [...], "cursor": LAST_MESSAGE_ID, "timed_out": bool}
Pass "cursor" back as --after next time.`),
    async (o, ctx) => {
      if (o.as === undefined) throw new OrchError("usage", "give --as WORKER (your worker name)");
      const worker = check(idSchema("--as"), o.as, "--as");
      const thread = threadId(o.thread);
      const after = intOption(o.after, "--after", 0, Number.MAX_SAFE_INTEGER)!;
      const timeout = intOption(o.timeoutSeconds, "--timeout-seconds", 0, MAX_WAIT_SECONDS) ?? 600;
      await ctx.read(() => undefined); // fail fast on a bad database
      const r = await waitForMessages(ctx.dbPath, { worker, thread, after, timeoutMs: timeout * 1000 });
      return {
        data: { ...r },
        text: r.timed_out ? `no new messages for ${worker} within ${timeout}s (cursor ${r.cursor})` : `${renderMessages(r.messages)}\n(cursor ${r.cursor})`,
      };
    },
  );

  act(
    workerVerb("done", "finish the attempt with a result; the task becomes done", "--result-json").addHelpText("after", `
Output (--json): {"ok": true, "thread": {...}, "lease": null, "message": {...the result...}}

Example:
  inbox --db ./coord.db --json done --token TOKEN --body "Root cause: DB pool timeout." --result-json '{"files":["src/db.ts"]}'`),
    async (o, ctx) => {
      const token = tokenOf(o);
      const body = bodyOf(o);
      const result = payloadOf({ payloadJson: o.resultJson }, "--result-json");
      return workerWriteResult(await ctx.write((db) => inbox.finish(db, token, body, result)), "result posted; attempt done");
    },
  );

  act(
    workerVerb("fail", "give up on the attempt with a reason; the task becomes failed (the leader may retry)").addHelpText("after", `
Output (--json): {"ok": true, "thread": {...}, "lease": null, "message": {...the failure...}}`),
    async (o, ctx) => {
      const token = tokenOf(o);
      const body = bodyOf(o);
      const payload = payloadOf(o);
      return workerWriteResult(await ctx.write((db) => inbox.fail(db, token, body, payload)), "failure posted; attempt failed");
    },
  );

  act(
    program.command("release").description("give the thread back unfinished; it can be claimed again")
      .option("--token <token>", "your lease token (required)")
      .addHelpText("after", `
Output (--json): {"ok": true, "thread": {...}, "lease": null}`),
    async (o, ctx) => {
      const token = tokenOf(o);
      return workerWriteResult(await ctx.write((db) => inbox.release(db, token)), "released");
    },
  );
}

export type { Context };
