/** `orch archive`: move a finished run into an archive database and shrink the live file (lib/archive.ts). */
import type { Command } from "commander";
import { act } from "./main.ts";
import type { CommandResult } from "./_context.ts";
import { OrchError } from "../lib/errors.ts";
import { check, idSchema } from "../lib/validate.ts";
import * as rt from "../lib/_runtime.ts";
import { archiveRun, type ArchiveResult } from "../lib/archive.ts";
import { bytes, paint } from "./_format.ts";

function renderArchive(r: ArchiveResult): string {
  const m = r.moved;
  const lines: string[] = [];
  if (r.dry_run) lines.push(paint("yellow", "dry run: nothing was changed"));
  const verb = r.dry_run ? "would move" : "moved";
  lines.push(`${verb} run ${r.run_id} to ${r.archive}${r.archive_created ? (r.dry_run ? " (would be created)" : " (created)") : ""}`);
  lines.push(`  ${m.tasks} task(s), ${m.deps} dep(s), ${m.attempts} attempt(s), ${m.threads} thread(s), ${m.messages} message(s), ${m.leases} lease(s), ${m.events} event(s)`);
  if (r.already_archived) lines.push("  the archive already held this run, identical (an earlier archive was interrupted)");
  lines.push(`live database: ${bytes(r.bytes_before)} -> ${bytes(r.bytes_after)}${r.dry_run ? " (estimated)" : ""}`);
  if (!r.dry_run) lines.push(`read it with: orch --db ${r.archive} status --run ${r.run_id}`);
  return lines.join("\n");
}

export function registerArchive(program: Command): void {
  act(
    program.command("archive").description("move a done or cancelled run, with all its rows, into an archive database and shrink the live file")
      .option("--run <id>", "(required) the run to move; it must be done or cancelled")
      .option("--to <file>", "(required) the archive database (an ordinary orch database; created if missing)")
      .option("--dry-run", "report what would move and the size after; change nothing")
      .addHelpText("after", `
Every write reads and rewrites the whole live file, so old runs slow down every
command. archive moves one finished run (done or cancelled) out of it: the run,
its tasks, dependencies, attempts, threads (those of the run), their messages
and leases, and its events. Free-standing threads (no run) are never moved.

The archive file is written first, atomically and under its own lock; then the
rows are deleted from the live database in one transaction and the file is
compacted (VACUUM), so it really shrinks. If the command dies in between, the
run is in both files: run it again (it is safe to repeat; an identical copy in
the archive is kept, a stale one replaced). Rows keep their ids, so the archive
is an ordinary orch database: orch --db ARCHIVE status / run show / events and
inbox --db ARCHIVE show work on it. Ids never repeat within one live database;
use one archive file per live database.

Git worktrees of the run's attempts are not touched (their paths stay recorded
in the archive): run \`orch cleanup --run ID --all-completed\` first.

Output (--json): {"ok": true, "run_id", "archive": ABS_PATH,
  "moved": {"tasks", "deps", "attempts", "threads", "messages", "leases", "events"},
  "bytes_before", "bytes_after", "dry_run": bool, "archive_created": bool, "already_archived": bool}
  bytes_* are the live file's size; with --dry-run bytes_after is what it would be.
  already_archived: the archive held this run, identical (a repeat after an interruption).

Errors:
  usage (exit 2)          missing or bad --run/--to, or --to is the live database
  not_found (exit 3)      unknown run (the message says if the archive already holds it)
  invalid_state (exit 4)  the run is still active (the message names its open tasks)
  conflict (exit 4)       the archive holds a different run with this id, or rows of other
                          runs under this run's ids (it was filled from another database)
  db_too_new (exit 7)     the archive was written by a newer orch
  busy (exit 6)           a database stayed locked, or the run kept changing (repeat it)

Example:
  orch --db ./coord.db --json archive --run blog_mvp_001 --to ./archive.db --dry-run
  orch --db ./coord.db --json archive --run blog_mvp_001 --to ./archive.db`),
    async (o, ctx): Promise<CommandResult> => {
      if (o.run === undefined) throw new OrchError("usage", "missing required flag --run", { hint: "see --help" });
      if (o.to === undefined || String(o.to).trim() === "") throw new OrchError("usage", "missing required flag --to (the archive database file)", { hint: "see --help" });
      const input = {
        run: check(idSchema("--run"), o.run, "--run"),
        to: rt.path.resolve(rt.cwd(), String(o.to)),
        dryRun: o.dryRun === true,
      };
      const r = await archiveRun(ctx.dbPath, input, ctx.store);
      return { data: { ...r }, text: renderArchive(r) };
    },
  );
}
