/**
 * The worker brief: turns a saved dispatch result (the JSON of `orch --json
 * dispatch`, `retry` or `reassign`) into the standard prompt for the worker
 * agent. The dispatch JSON only identifies the attempt; every value in the
 * brief is read from the database, so a brief never repeats stale or edited
 * JSON, and a brief for the wrong database is refused.
 */
import { z } from "zod";
import * as rt from "./_runtime.ts";
import { OrchError } from "./errors.ts";
import type { Db } from "./sqlite.ts";
import { readSnapshot } from "./storage.ts";
import { getRun } from "./runs.ts";
import { getTaskRow } from "./tasks.ts";
import { type AttemptRow, EXECUTION_MODES } from "./attempts.ts";
import { DEFAULT_LEASE_SECONDS, threadMessages } from "./inbox.ts";
import { idSchema } from "./validate.ts";
import { loadDefaultBriefTemplate } from "./_brief_template.ts";

/** Limits for the inputs read from files or stdin. */
export const BRIEF_LIMITS = { dispatchJsonBytes: 1024 * 1024, templateBytes: 256 * 1024 } as const;

/** Every placeholder a template may use, with what it stands for (shown in --help). */
export const BRIEF_PLACEHOLDERS = {
  worker: "the worker's name (attempt.assigned_to); use it with --as",
  run_id: "the run's id",
  run_goal: "the run's goal",
  run_summary: "the run's summary (empty when none)",
  task_id: "the task's id",
  task_title: "the task's title",
  task_summary: "the task's summary (empty when none)",
  acceptance: "the task's acceptance criteria, pretty JSON (\"(none given)\" when absent)",
  assignment: "the assignment message the leader posted on the thread",
  thread_id: "the inbox thread of this attempt",
  attempt_id: "the attempt's id",
  attempt_number: "the attempt's number for this task (1, 2, ...)",
  execution_mode: "analysis or code",
  db: "the database path, absolute",
  inbox: "the inbox command prefix with the database filled in: INBOX --db /abs/coord.db --json",
  lease_seconds: "the default lease length in seconds",
  worktree_section: "a paragraph: code mode's worktree, branch, base commit and the rule to work and commit only there; analysis mode's rule not to change the repository",
  worktree_path: "code mode: the attempt's worktree (\"-\" in analysis mode)",
  branch: "code mode: the attempt's branch (\"-\" in analysis mode)",
  base_ref: "code mode: the base ref given at dispatch (\"-\" in analysis mode)",
  base_commit: "code mode: the commit the branch starts from (\"-\" in analysis mode)",
  repo_path: "code mode: the repository (\"-\" in analysis mode)",
} as const;

export type PlaceholderName = keyof typeof BRIEF_PLACEHOLDERS;
export type BriefValues = Record<PlaceholderName, string>;

const positiveInt = z.number().int().positive();
const optionalText = z.string().nullable().optional();

/** The part of a dispatch result the brief needs; other fields are ignored. */
export const dispatchJsonSchema = z.object({
  ok: z.literal(true).optional(),
  run_id: idSchema("run_id"),
  task: z.object({ id: idSchema("task.id") }),
  attempt: z.object({
    id: positiveInt,
    run_id: idSchema("attempt.run_id"),
    task_id: idSchema("attempt.task_id"),
    number: positiveInt,
    thread_id: positiveInt,
    assigned_to: idSchema("attempt.assigned_to"),
    execution_mode: z.enum(EXECUTION_MODES),
    worktree_path: optionalText,
    branch: optionalText,
    base_commit: optionalText,
  }),
  db: z.string().optional(),
}).superRefine((d, ctx) => {
  if (d.attempt.run_id !== d.run_id || d.attempt.task_id !== d.task.id) {
    ctx.addIssue({ code: "custom", path: ["attempt"], message: `belongs to ${d.attempt.run_id}/${d.attempt.task_id}, but the result is for ${d.run_id}/${d.task.id}` });
  }
  if (d.attempt.execution_mode === "code") {
    for (const k of ["worktree_path", "branch", "base_commit"] as const) {
      if (!d.attempt[k]) ctx.addIssue({ code: "custom", path: ["attempt", k], message: "is required for execution_mode code" });
    }
  }
});

export type DispatchRef = z.infer<typeof dispatchJsonSchema>;

const USE_HINT = "pass the unchanged stdout of `orch --json dispatch` (or `retry` / `reassign`)";

/** Parses and checks a saved dispatch result; `source` names it in errors. */
export function parseDispatchJson(text: string, source: string): DispatchRef {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const what = text.trim() === "" ? "is empty" : `is not JSON (${(err as Error).message})`;
    throw new OrchError("usage", `the dispatch JSON ${source} ${what}`, { hint: USE_HINT });
  }
  if (value && typeof value === "object" && (value as { ok?: unknown }).ok === false) {
    const e = (value as { error?: { code?: unknown; message?: unknown } }).error;
    throw new OrchError("usage", `the dispatch JSON ${source} is an error result (${String(e?.code)}: ${String(e?.message)}), not a dispatch`, {
      hint: "the dispatch failed, so there is no attempt to brief; fix that and dispatch again",
    });
  }
  const r = dispatchJsonSchema.safeParse(value);
  if (r.success) return r.data;
  const problems = r.error.issues.slice(0, 5).map((i) => {
    const where = i.path.length ? i.path.join(".") : "(top level)";
    const missing = i.code === "invalid_type" && / received undefined$/.test(i.message);
    return `${where}: ${missing ? `is missing (expected ${i.expected})` : i.message}`;
  });
  throw new OrchError("usage", `the dispatch JSON ${source} does not match a dispatch result: ${problems.join("; ")}`, { hint: USE_HINT });
}

/** Quotes a word for a POSIX shell (or cmd.exe on Windows) only when it needs it. */
export function shellQuote(word: string, windows = rt.isWindows): string {
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(word)) return word;
  if (windows) return `"${word.replace(/"/g, '""')}"`;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

const ENDED = new Set(["done", "failed", "cancelled"]);

/** Reads what the brief says from the database, checking the attempt is the one the JSON names. */
export function briefValues(db: Db, ref: DispatchRef, o: { dbPath: string; inboxCommand: string }): BriefValues {
  const a = ref.attempt;
  const row = db.get<AttemptRow>("SELECT * FROM attempts WHERE id = ?", [a.id]);
  const mismatch = !row || row.run_id !== a.run_id || row.task_id !== a.task_id || row.number !== a.number || row.thread_id !== a.thread_id;
  if (mismatch) {
    throw new OrchError("not_found", `attempt ${a.number} of ${a.run_id}/${a.task_id} (id ${a.id}, thread ${a.thread_id}) is not in the database ${o.dbPath}`, {
      hint: ref.db && rt.path.resolve(ref.db) !== o.dbPath ? `the dispatch JSON says it was made against ${ref.db}; pass that as --db` : "pass the --db the dispatch was made against",
    });
  }
  if (row.worker !== a.assigned_to) {
    throw new OrchError("conflict", `attempt ${a.id} is assigned to ${row.worker} in the database, not ${a.assigned_to} as the dispatch JSON says`, {
      hint: "pass the unchanged dispatch JSON",
    });
  }
  if (ENDED.has(row.status)) {
    throw new OrchError("invalid_state", `attempt ${row.number} of ${row.run_id}/${row.task_id} is already ${row.status}${row.end_reason ? ` (${row.end_reason})` : ""}: a worker can no longer take it`, {
      hint: `see \`orch status --run ${row.run_id}\`; \`orch retry\` makes a fresh attempt to brief`,
    });
  }
  const run = getRun(db, row.run_id);
  const task = getTaskRow(db, row.run_id, row.task_id);
  const assignment = threadMessages(db, row.thread_id).find((m) => m.kind === "assignment");
  const acceptance = task.acceptance_json ? JSON.stringify(JSON.parse(task.acceptance_json), null, 2) : "(none given)";
  const code = row.mode === "code";
  const inbox = `${shellQuote(o.inboxCommand)} --db ${shellQuote(o.dbPath)} --json`;
  return {
    worker: row.worker,
    run_id: run.id,
    run_goal: run.goal,
    run_summary: run.summary ?? "",
    task_id: task.id,
    task_title: task.title,
    task_summary: task.summary ?? "",
    acceptance,
    assignment: assignment?.body ?? "(no assignment message)",
    thread_id: String(row.thread_id),
    attempt_id: String(row.id),
    attempt_number: String(row.number),
    execution_mode: row.mode,
    db: o.dbPath,
    inbox,
    lease_seconds: String(DEFAULT_LEASE_SECONDS),
    worktree_section: code ? codeSection(row) : ANALYSIS_SECTION,
    worktree_path: code ? row.worktree_path ?? "-" : "-",
    branch: code ? row.branch ?? "-" : "-",
    base_ref: code ? row.base_ref ?? "-" : "-",
    base_commit: code ? row.base_commit ?? "-" : "-",
    repo_path: code ? row.repo_path ?? "-" : "-",
  };
}

const ANALYSIS_SECTION = [
  "Analysis mode: there is no worktree for this attempt. Read whatever you need,",
  "but do not change the repository: no edits, no commits, no branches. Your",
  "findings go into the result.",
].join("\n");

function codeSection(row: AttemptRow): string {
  const wt = shellQuote(row.worktree_path ?? "");
  return [
    "Code mode: this attempt has its own git worktree on a fresh branch. Work and",
    "commit only there.",
    "",
    `- worktree: ${row.worktree_path}`,
    `- branch: ${row.branch}`,
    `- base: ${row.base_ref ?? "-"} at commit ${row.base_commit}`,
    `- repository: ${row.repo_path ?? "-"}`,
    "",
    "Start there:",
    "",
    `    cd ${wt}`,
    "",
    "Edit, build and test only inside the worktree, and commit your work on its",
    `branch (${row.branch}) before you finish: uncommitted changes can be lost`,
    "when the leader cleans up. Do not switch branches, push, rebase onto other",
    "work, or touch the main checkout or other worktrees. Put the final commit id",
    "and the files you changed in `--result-json`.",
  ].join("\n");
}

/** Drops a leading `<!-- ... -->` comment: the template's own documentation. */
function stripLeadingComment(template: string): { body: string; skippedLines: number } {
  const m = /^\uFEFF?\s*<!--[\s\S]*?-->[ \t]*\r?\n?/.exec(template);
  if (!m) return { body: template, skippedLines: 0 };
  return { body: template.slice(m[0].length), skippedLines: m[0].split("\n").length - 1 };
}

const PLACEHOLDER_RE = /\{\{([^{}\n]*)\}\}/g;

function isPlaceholder(name: string): name is PlaceholderName {
  return Object.hasOwn(BRIEF_PLACEHOLDERS, name);
}

/**
 * Fills a template. Unknown placeholders are an error naming each one with its
 * line; a line holding only a placeholder whose value is empty is dropped,
 * with the blank line after it.
 */
export function renderTemplate(template: string, values: BriefValues, source: string): string {
  const { body, skippedLines } = stripLeadingComment(template);
  const unknown: string[] = [];
  const lines = body.split(/\r?\n/);
  lines.forEach((line, i) => {
    for (const m of line.matchAll(PLACEHOLDER_RE)) {
      if (!isPlaceholder(m[1].trim())) unknown.push(`{{${m[1]}}} (line ${i + 1 + skippedLines})`);
    }
  });
  if (unknown.length > 0) {
    throw new OrchError("usage", `template ${source}: unknown placeholder${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}`, {
      hint: `known placeholders: ${Object.keys(BRIEF_PLACEHOLDERS).map((k) => `{{${k}}}`).join(" ")}`,
    });
  }
  const out: string[] = [];
  let dropBlank = false;
  for (const line of lines) {
    const only = /^\s*\{\{([^{}\n]*)\}\}\s*$/.exec(line);
    if (only && values[only[1].trim() as PlaceholderName] === "") {
      dropBlank = true;
      continue;
    }
    if (dropBlank && line.trim() === "") {
      dropBlank = false;
      continue;
    }
    dropBlank = false;
    out.push(line.replace(PLACEHOLDER_RE, (_, name: string) => values[name.trim() as PlaceholderName]));
  }
  return out.join("\n").replace(/\s+$/, "") + "\n";
}

/** Checks a template's placeholders without rendering it (for early, clear errors). */
export function checkTemplate(template: string, source: string): void {
  const empty = Object.fromEntries(Object.keys(BRIEF_PLACEHOLDERS).map((k) => [k, "x"])) as BriefValues;
  renderTemplate(template, empty, source);
}

export function defaultBriefTemplate(): string {
  return loadDefaultBriefTemplate();
}

export interface BriefInput {
  /** The database path, absolute. */
  dbPath: string;
  /** The dispatch result's text, and what to call it in errors. */
  dispatchJson: string;
  dispatchSource: string;
  /** A template's text (default: the built-in template), and what to call it in errors. */
  template?: string;
  templateSource?: string;
  /** How the worker runs the inbox CLI (default `inbox`). */
  inboxCommand?: string;
}

/** Renders the brief: parse and check the dispatch JSON and the template, then read the database (lock-free). */
export async function renderBrief(input: BriefInput): Promise<string> {
  const ref = parseDispatchJson(input.dispatchJson, input.dispatchSource);
  const template = input.template ?? defaultBriefTemplate();
  const source = input.templateSource ?? "(built-in)";
  checkTemplate(template, source);
  const db = await readSnapshot(input.dbPath);
  try {
    const values = briefValues(db, ref, { dbPath: input.dbPath, inboxCommand: input.inboxCommand ?? "inbox" });
    return renderTemplate(template, values, source);
  } finally {
    db.close();
  }
}
