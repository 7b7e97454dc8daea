/** `orch-worker-brief`: renders a saved dispatch result into a worker prompt. */
import type { Command } from "commander";
import { act } from "./main.ts";
import * as rt from "../lib/_runtime.ts";
import { OrchError } from "../lib/errors.ts";
import { BRIEF_LIMITS, BRIEF_PLACEHOLDERS, renderBrief } from "../lib/brief.ts";

const PLACEHOLDER_HELP = Object.entries(BRIEF_PLACEHOLDERS)
  .map(([k, v]) => `  ${`{{${k}}}`.padEnd(20)} ${v}`)
  .join("\n");

/** Reads a file argument ('-' is stdin) with a size limit; `flag` names it in errors. */
async function readInput(file: string, flag: string, maxBytes: number): Promise<{ text: string; source: string }> {
  if (file === "-") {
    const r = await rt.readStdin(maxBytes);
    if (r.tooLong) throw new OrchError("usage", `${flag} -: standard input is longer than the limit of ${maxBytes} bytes`);
    return { text: r.text, source: "(stdin)" };
  }
  const p = rt.path.resolve(rt.cwd(), file);
  const st = rt.statOrNull(p);
  if (!st?.isFile()) throw new OrchError("usage", `${flag} ${file}: no such file`, { hint: flag === "--dispatch-json" ? "save it with `orch --json dispatch ... > FILE`, or pass - to read stdin" : undefined });
  if (st.size > maxBytes) throw new OrchError("usage", `${flag} ${file} is longer than the limit of ${maxBytes} bytes`);
  return { text: rt.readText(p), source: file };
}

export function registerBrief(program: Command): void {
  act(
    program
      .option("--dispatch-json <file>", "the saved output of `orch --json dispatch` (or retry/reassign); '-' reads stdin")
      .option("--template <file>", "a template to render instead of the built-in one (see Placeholders)")
      .option("--inbox-command <cmd>", "how the worker runs the inbox CLI, e.g. the inbox skill's assets/inbox (default: $ORCH_INBOX_COMMAND, else `inbox`)")
      .addHelpText("after", `
Prints the prompt for the worker of one dispatched attempt: who it is, the run's
goal, the task (title, summary, acceptance), the thread and attempt, in code mode
the worktree, branch and base commit and the rule to work and commit only there,
and the exact inbox commands (database path filled in, absolute) to claim,
heartbeat, report progress, ask and wait for the answer, finish or fail.

The dispatch JSON only says which attempt; everything else is read from --db
(lock-free), which must be the database the dispatch was made against. A JSON
that is not a dispatch result, or an attempt that has already ended, is refused.

The skill launchers set ORCH_INBOX_COMMAND to the inbox launcher beside them.

Templates: the built-in template is skills/orch/references/worker-brief-template.md.
Copy it, edit it, pass --template FILE. A leading <!-- ... --> comment is not
printed. An unknown {{placeholder}} is an error; a line holding only a
placeholder whose value is empty is dropped.

Placeholders:
${PLACEHOLDER_HELP}

Output: the brief as text; with --json: {"ok": true, "brief": "..."}

Examples:
  orch --db ./coord.db --json dispatch --run R1 --task T1 --execution-mode analysis > t1.json
  orch-worker-brief --dispatch-json t1.json --db ./coord.db > t1-brief.md
  orch --db ./coord.db --json dispatch --run R1 --task T2 --execution-mode analysis | orch-worker-brief --dispatch-json - --db ./coord.db`),
    async (o, ctx) => {
      if (o.dispatchJson === undefined) {
        throw new OrchError("usage", "give --dispatch-json FILE (the saved output of `orch --json dispatch`), or - to read it from stdin");
      }
      if (o.dispatchJson === "-" && o.template === "-") throw new OrchError("usage", "--dispatch-json and --template cannot both read stdin");
      const dbPath = ctx.dbPath;
      const dispatch = await readInput(String(o.dispatchJson), "--dispatch-json", BRIEF_LIMITS.dispatchJsonBytes);
      const template = o.template === undefined ? undefined : await readInput(String(o.template), "--template", BRIEF_LIMITS.templateBytes);
      // an empty ORCH_INBOX_COMMAND counts as unset; an empty --inbox-command is a mistake
      const inboxCommand = o.inboxCommand ?? (rt.env("ORCH_INBOX_COMMAND") || "inbox");
      if (String(inboxCommand).trim() === "") throw new OrchError("usage", "--inbox-command must not be empty");
      const brief = await renderBrief({
        dbPath,
        dispatchJson: dispatch.text,
        dispatchSource: dispatch.source === "(stdin)" ? "on stdin" : `in ${dispatch.source}`,
        template: template?.text,
        templateSource: template?.source,
        inboxCommand: String(inboxCommand),
      });
      return { data: { brief }, text: brief };
    },
  );
}
