/** `inbox` commands: init, send/list/show for inspection, and the worker's lease-guarded verbs. */
import type { Command } from "commander";
import { act } from "./main.ts";
import { bodyFrom, type CommandResult, type Context, intOption } from "./_context.ts";
import { initDatabase } from "../lib/storage.ts";
import * as inbox from "../lib/inbox.ts";
import { bodySchema, check, idSchema, LIMITS, parseJsonArg } from "../lib/validate.ts";
import { waitForMessages } from "../lib/wait.ts";
import { OrchError } from "../lib/errors.ts";
import { kv, oneLine, paint, relative, status, table } from "./_format.ts";
import { z } from "zod";

const threadId = (v: string | undefined, flag = "--thread") => intOption(v, flag, 1, Number.MAX_SAFE_INTEGER);
const tokenSchema = z.string().regex(/^[0-9a-f]{32}$/, { message: "must be the 32-character lease token printed by `inbox claim`" });
const kindSchema = z.enum(inbox.MESSAGE_KINDS, { message: `must be one of ${inbox.MESSAGE_KINDS.join(", ")}` });
const MAX_WAIT_SECONDS = 86_400;

/** The errors every lease-guarded write can end with (shown in each worker verb's --help). */
const WORKER_WRITE_ERRORS = `
Errors (--json: {"ok": false, "error": {"code", "message", "hint"}}):
  usage (exit 2)       malformed --token, empty or oversized body (limit ${LIMITS.bodyBytes} bytes),
                       a JSON flag that is not a JSON object (limit ${LIMITS.jsonBytes} bytes)
  lease_lost (exit 5)  the token's lease is over: the attempt was cancelled, reassigned,
                       released, finished or its lease expired (the message says which),
                       or the token is unknown. Stop working on the thread; nothing was written.`;

/**
 * Waits for messages to the lease's worker on its thread while keeping the
 * lease alive (a heartbeat whenever half of it has run down), because a worker
 * blocked in this command is still at work. Used by `ask --wait` and
 * `wait --token`.
 */
async function waitKeepingLease(
  ctx: Context,
  token: string,
  start: { lease: inbox.Lease; thread: number; after: number; kinds?: readonly inbox.MessageKind[] },
  timeoutMs: number,
): Promise<{ messages: inbox.Message[]; timed_out: boolean; cursor: number; lease: inbox.Lease }> {
  const deadline = Date.now() + timeoutMs;
  let lease = start.lease;
  const look = (ms: number) =>
    waitForMessages(ctx.dbPath, { worker: lease.worker, thread: start.thread, after: start.after, kinds: start.kinds, timeoutMs: ms });
  for (;;) {
    const renewAt = Date.parse(lease.expires_at) - lease.seconds * 500;
    const w = await look(Math.max(0, Math.min(deadline, renewAt) - Date.now()));
    if (w.messages.length > 0 || Date.now() >= deadline) return { ...w, lease };
    try {
      lease = (await ctx.write((db) => inbox.heartbeat(db, token))).lease!;
    } catch (err) {
      // a busy database is no reason to give up waiting: half the lease is still left
      if (err instanceof OrchError && err.code === "busy") continue;
      // the leader may have cancelled just now: its message says more than lease_lost
      if (err instanceof OrchError && err.code === "lease_lost") {
        const last = await look(0);
        if (last.messages.length > 0) return { ...last, lease };
      }
      throw err;
    }
  }
}

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
On a thread that belongs to an attempt only notes and progress can be sent:
the kinds that change an attempt's state (question, answer, result, failure,
cancel) go through the lease-checked worker verbs (ask, done, fail) and the
leader's verbs (\`orch answer\`, \`orch cancel\`, \`orch reassign\`), so a stale
worker can never overwrite its successor.

Output (--json): {"ok": true, "thread": {...}, "message": {"id", "thread_id", "kind", "from", "to", "body", "payload", "created_at"}, "created_thread": bool}

Errors: usage (exit 2) no --to for a new thread, bad id or kind, empty/oversized body, bad
--payload-json; not_found (exit 3) unknown --thread; invalid_state (exit 4) a state-changing
kind on an attempt's thread.

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
Output (--json): {"ok": true, "threads": [{"id", "run_id", "task_id", "attempt_id", "subject", "assigned_to", "status", "lease", "message_count", "last_message_id", ...}]}

Errors: usage (exit 2) bad id, status or limit.

Example:
  inbox --db ./coord.db list --to qa-worker --status open`),
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
Shows the thread as stored: a lease past its expiry is still listed until a
reconcile (or the next claim) ends it.

Output (--json): {"ok": true, "thread": {...}, "messages": [{"id", "kind", "from", "to", "body", "payload", "created_at"}]}

Errors: usage (exit 2) missing --thread; not_found (exit 3) unknown thread.

Example:
  inbox --db ./coord.db show --thread 3`),
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

Output (--json): {"ok": true, "thread": {...}, "lease": {"token", "worker", "claimed_at", "expires_at", "seconds"},
                  "messages": [...the assignment, then the latest 200...], "messages_truncated": bool}
(when messages_truncated is true, read the rest with \`inbox show --thread ID\`)

Errors:
  usage (exit 2)            missing/invalid --as, --thread or --lease-seconds (1..${MAX_WAIT_SECONDS})
  not_found (exit 3)        no such thread, or no open thread is addressed to --as
  already_claimed (exit 4)  another claim holds the thread (the message names it and its expiry)
  invalid_state (exit 4)    the thread is closed (its attempt ended) or addressed to another worker

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

Output (--json): {"ok": true, "thread": {...}, "lease": {"worker", "claimed_at", "expires_at", "seconds"}}
${WORKER_WRITE_ERRORS}

Example:
  inbox --db ./coord.db --json heartbeat --token TOKEN`),
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
${WORKER_WRITE_ERRORS}

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
attempt: "answer" is then the cancel message), or when the timeout passes:
"answer" is then null and "timed_out" true; wait again later with
\`inbox wait --token TOKEN --after MESSAGE_ID\`. While it waits it keeps the
lease alive (a heartbeat whenever half the lease has run down). It wakes for
messages of kind answer or cancel: \`orch answer\` sends one; on a free-standing
thread reply with \`inbox send --thread ID --kind answer\`.

Output (--json): {"ok": true, "thread": {...}, "lease": {...as renewed while waiting}, "message": {...the question...},
                  "answer": {"id", "kind": "answer"|"cancel", "body", "payload", ...}|null,
                  "timed_out": bool}   (answer/timed_out with --wait only)
${WORKER_WRITE_ERRORS}

Example:
  inbox --db ./coord.db --json ask --token TOKEN --body "Support drafts?" --wait --timeout-seconds 900`),
    async (o, ctx) => {
      const token = tokenOf(o);
      const body = bodyOf(o);
      const payload = payloadOf(o);
      const timeout = intOption(o.timeoutSeconds, "--timeout-seconds", 0, MAX_WAIT_SECONDS) ?? 600;
      const asked = await ctx.write((db) => inbox.ask(db, token, body, payload));
      if (!o.wait) return workerWriteResult(asked, `question ${asked.message!.id} posted; task blocked`);
      const w = await waitKeepingLease(ctx, token, { lease: asked.lease!, thread: asked.thread.id, after: asked.message!.id, kinds: ["answer", "cancel"] }, timeout * 1000);
      const reply = w.messages[0] ?? null;
      const text = reply
        ? `${reply.kind === "cancel" ? "cancelled" : "answer"} (message ${reply.id}):\n${reply.body}${reply.payload ? `\npayload: ${JSON.stringify(reply.payload)}` : ""}`
        : `no answer within ${timeout}s; wait again with: inbox wait --token ${token} --after ${asked.message!.id}`;
      return { data: { ...asked, lease: w.lease, answer: reply, timed_out: w.timed_out }, text };
    },
  );

  act(
    program.command("wait").description("wait for messages addressed to you (answers, cancellations, notes) after a cursor")
      .option("--as <worker>", "your worker name (required unless --token)")
      .option("--thread <id>", "only this thread (with --token: the lease's thread)")
      .option("--token <token>", "your lease token: wait on its thread as its worker and keep the lease alive meanwhile")
      .option("--after <message-id>", "only messages after this id (default 0)", "0")
      .option("--timeout-seconds <s>", "give up after this long, 0-86400 (default 600; 0 checks once)")
      .addHelpText("after", `
Returns as soon as at least one message addressed to you (on --thread, if
given) exists after --after; a worker uses it to hear answers and cancel
messages, e.g. after \`inbox ask\` without --wait. Without --token it does not
touch the lease: a long wait can outlast it. With --token it heartbeats
whenever half the lease has run down, like \`ask --wait\`.

Output (--json): {"ok": true, "messages": [{"id", "thread_id", "kind", "from", "to", "body", "payload", "created_at"}],
                  "cursor": LAST_MESSAGE_ID, "timed_out": bool}   (with --token also "lease": {...as renewed})
Pass "cursor" back as --after next time. On timeout: ok with "timed_out": true (exit 0).

Errors:
  usage (exit 2)       neither --as nor --token, a malformed token, bad numbers, or
                       --as/--thread that do not match the --token's lease
  not_found (exit 3)   unknown --thread
  lease_lost (exit 5)  with --token: the lease is over (the message says why)

Examples:
  inbox --db ./coord.db --json wait --as qa-worker --thread 3 --after 12 --timeout-seconds 900
  inbox --db ./coord.db --json wait --token TOKEN --after 12 --timeout-seconds 900`),
    async (o, ctx) => {
      const after = intOption(o.after, "--after", 0, Number.MAX_SAFE_INTEGER)!;
      const timeout = intOption(o.timeoutSeconds, "--timeout-seconds", 0, MAX_WAIT_SECONDS) ?? 600;
      const asWorker = o.as === undefined ? undefined : check(idSchema("--as"), o.as, "--as");
      const thread = threadId(o.thread);
      const render = (r: { messages: inbox.Message[]; timed_out: boolean; cursor: number; lease?: inbox.Lease }, worker: string): CommandResult => ({
        data: { ...r },
        text: r.timed_out ? `no new messages for ${worker} within ${timeout}s (cursor ${r.cursor})` : `${renderMessages(r.messages)}\n(cursor ${r.cursor})`,
      });
      if (o.token !== undefined) {
        const token = tokenOf(o);
        const held = await ctx.read((db) => {
          const { lease, thread: t } = inbox.requireLease(db, token, Date.now());
          return { lease: inbox.toLease(lease)!, thread: t.id };
        });
        if (asWorker !== undefined && asWorker !== held.lease.worker) {
          throw new OrchError("usage", `--as ${asWorker} does not match the token's worker ${held.lease.worker}`);
        }
        if (thread !== undefined && thread !== held.thread) {
          throw new OrchError("usage", `--thread ${thread} does not match the token's thread ${held.thread}`);
        }
        return render(await waitKeepingLease(ctx, token, { lease: held.lease, thread: held.thread, after }, timeout * 1000), held.lease.worker);
      }
      if (asWorker === undefined) throw new OrchError("usage", "give --as WORKER (your worker name), or --token TOKEN");
      // fail fast on a bad database or an unknown thread
      await ctx.read((db) => (thread === undefined ? undefined : inbox.getThreadRow(db, thread)));
      return render(await waitForMessages(ctx.dbPath, { worker: asWorker, thread, after, timeoutMs: timeout * 1000 }), asWorker);
    },
  );

  act(
    workerVerb("done", "finish the attempt with a result; the task becomes done", "--result-json").addHelpText("after", `
--result-json is a JSON object the leader reads as the message's payload.

Output (--json): {"ok": true, "thread": {...}, "lease": null, "message": {...the result, "payload": RESULT_JSON...}}
${WORKER_WRITE_ERRORS}

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
Output (--json): {"ok": true, "thread": {...}, "lease": null, "message": {...the failure...}}
${WORKER_WRITE_ERRORS}

Example:
  inbox --db ./coord.db --json fail --token TOKEN --body "The logs needed are gone from CI."`),
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
The lease ends and the token is refused from now on; the task goes back to
dispatched, and this or another worker of the same name can claim it again.

Output (--json): {"ok": true, "thread": {...}, "lease": null}
${WORKER_WRITE_ERRORS}

Example:
  inbox --db ./coord.db --json release --token TOKEN`),
    async (o, ctx) => {
      const token = tokenOf(o);
      return workerWriteResult(await ctx.write((db) => inbox.release(db, token)), "released");
    },
  );
}

export type { Context };
