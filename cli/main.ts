/**
 * The CLI: one program, three entry points. `orch` (leader), `inbox`
 * (worker; also `orch inbox ...`) and `orch-worker-brief` (also
 * `orch worker-brief`). Commands parse flags, call lib/, and return a result
 * that render.ts prints; errors are rendered there too, and nowhere else.
 */
import { Command, CommanderError, Option } from "commander";
import * as rt from "../lib/_runtime.ts";
import { OrchError, toOrchError, EXIT_CODES } from "../lib/errors.ts";
import { type CommandResult, Context, type GlobalOptions, type Io } from "./_context.ts";
import { renderError, renderResult } from "./render.ts";
import { setColor } from "./_format.ts";
import { VERSION, versionInfo } from "../lib/version.ts";
import { mark } from "./_timing.ts";

export type EntryName = "orch" | "inbox" | "orch-worker-brief";

/** Which entry point a binary or script name stands for (`inbox`, `inbox.exe`, `orch-worker-brief.cmd` ...). */
export function entryFromName(name: string | undefined): EntryName {
  const base = (name ?? "").split(/[\\/]/).pop()!.toLowerCase().replace(/\.(exe|cmd|mjs|js|ts)$/, "");
  if (base === "inbox" || base.startsWith("inbox-")) return "inbox";
  if (base === "orch-worker-brief" || base.startsWith("orch-worker-brief-")) return "orch-worker-brief";
  return "orch";
}

export type Handler = (opts: Record<string, any>, ctx: Context, cmd: Command) => Promise<CommandResult>;

/** Holds the context and the outcome of the command that ran. */
interface Session {
  io: Io;
  result?: CommandResult;
  ctx?: Context;
}

let session: Session;

/** Registers the action of a command; main.ts renders what it returns. */
export function act(cmd: Command, handler: Handler): Command {
  return cmd.action(async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const opts = command.optsWithGlobals() as Record<string, any> & GlobalOptions;
    session.ctx = new Context(opts, session.io);
    session.result = await handler(opts, session.ctx, command);
  });
}

export const EXIT_HELP = `
Output:
  Text for people by default. With --json, stdout is exactly one JSON object:
  {"ok": true, ...result fields} or {"ok": false, "error": {"code", "message", "hint"?}}.

Exit codes:
  0 ok · 1 internal · 2 usage · 3 not found (${"not_found, db_missing"}) ·
  4 invalid state (conflict, invalid_state, not_ready, cycle, already_claimed) ·
  5 lease lost · 6 database busy (busy, lock_lost) · 7 database unusable
  (db_invalid, db_too_new, db_unwritable) · 8 git failed

Environment:
  ORCH_DB                default for --db
  ORCH_LOCK_TIMEOUT_MS   default for --lock-timeout-ms (10000)
  ORCH_LOCK_STALE_MS     default for --lock-stale-ms (30000)
  NO_COLOR               no colour in text output`;

function addGlobals(cmd: Command): Command {
  return cmd
    .option("--db <path>", "the orch database file (default: $ORCH_DB)")
    .option("--json", "print exactly one JSON object on stdout")
    .addOption(new Option("--lock-timeout-ms <ms>", "how long a write waits for the lock before failing with `busy` (default 10000)"))
    .addOption(new Option("--lock-stale-ms <ms>", "a lock older than this is broken as abandoned (default 30000)"));
}

function newProgram(name: string, description: string): Command {
  const program = addGlobals(new Command(name))
    .description(description)
    .version(VERSION, "-V, --version", "print the version, runtime and SQLite version")
    .showHelpAfterError(false)
    .configureHelp({ sortSubcommands: false, showGlobalOptions: true })
    .addHelpText("after", EXIT_HELP);
  return program;
}

/** Applies the shared settings to every command in the tree (error handling, output capture). */
function configureTree(cmd: Command, io: Io): void {
  cmd.exitOverride();
  cmd.configureOutput({ writeOut: (s) => io.stdout(s), writeErr: () => {} });
  cmd.allowExcessArguments(false);
  for (const sub of cmd.commands) configureTree(sub, io);
}

async function buildProgram(entry: EntryName): Promise<Command> {
  const { registerInbox } = await import("./inbox_commands.ts");
  if (entry === "inbox") {
    const program = newProgram("inbox", "Worker-side inbox of an orch database: claim a thread, report progress, ask, finish.");
    registerInbox(program);
    return program;
  }
  const { registerBrief } = await import("./brief_command.ts");
  if (entry === "orch-worker-brief") {
    const program = newProgram("orch-worker-brief", "Render a saved dispatch result into a standard worker prompt.");
    registerBrief(program);
    return program;
  }
  const { registerOrch } = await import("./orch_commands.ts");
  const program = newProgram("orch", "Leader-side control plane: runs, tasks, dependencies, dispatch, wait, answer, retry, cleanup.");
  registerOrch(program);
  const inbox = program.command("inbox").description("the worker inbox (same as the `inbox` entry point)");
  registerInbox(inbox);
  const brief = program.command("worker-brief").description("render a worker prompt (same as `orch-worker-brief`)");
  registerBrief(brief);
  return program;
}

function usageFrom(err: CommanderError): OrchError {
  const message = err.message.replace(/^error: /, "");
  return new OrchError("usage", message, { hint: "see --help for the command's flags" });
}

/** Runs the CLI on `args`; returns the process exit code. Never throws. */
export async function runCli(args: readonly string[], entry: EntryName, io: Io): Promise<number> {
  session = { io };
  setColor(io.isTTY);
  const json = args.includes("--json");
  try {
    mark("cli_start");
    const first = args.find((a) => a !== "--json");
    if (first === "--version" || first === "-V") {
      // answered before the command tree is built: it needs none of it
      const info = await versionInfo();
      return renderResult({ data: { ...info }, text: `${entry} ${info.version} (${info.runtime} ${info.runtime_version}${info.compiled ? ", compiled" : ""}; SQLite ${info.sqlite} via ${info.sqlite_binding})` }, json, io);
    }
    const program = await buildProgram(entry);
    mark("program_built");
    configureTree(program, io);
    await program.parseAsync([...args], { from: "user" });
    if (!session.result) return 0; // help was shown
    mark("command_done");
    return renderResult(session.result, json, io);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.help" || err.code === "commander.version") return 0;
      if (err.code === "commander.executeSubCommandAsync") return 0;
      return renderError(usageFrom(err), json, io);
    }
    return renderError(toOrchError(err), json, io);
  }
}

export { EXIT_CODES, rt };
