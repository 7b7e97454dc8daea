/** Every loop and worker command's --help names each of its flags with a description and documents its output. */
import { expect, test } from "vitest";
import { run, type Entry } from "./_helpers.ts";

const GLOBAL = ["--db", "--json", "--lock-timeout-ms", "--lock-stale-ms", "--version"];
const CODE = ["--repo-path", "--base-ref", "--workspace-root"];

const COMMANDS: [Entry, string, string[]][] = [
  ["orch", "dispatch", ["--run", "--task", "--execution-mode", "--to", "--body", "--body-file", ...CODE]],
  ["orch", "reconcile", ["--run"]],
  ["orch", "wait", ["--run", "--for", "--after-event", "--timeout-seconds"]],
  ["orch", "blocked", ["--run"]],
  ["orch", "answer", ["--run", "--task", "--body", "--body-file", "--payload-json"]],
  ["orch", "retry", ["--run", "--task", "--to", "--body", "--body-file", ...CODE]],
  ["orch", "reassign", ["--run", "--task", "--to", "--body", "--body-file", ...CODE]],
  ["orch", "cancel", ["--run", "--task", "--body", "--body-file"]],
  ["orch", "status", ["--run"]],
  ["inbox", "init", []],
  ["inbox", "send", ["--thread", "--to", "--from", "--subject", "--kind", "--body", "--body-file", "--payload-json"]],
  ["inbox", "list", ["--to", "--run", "--status", "--limit"]],
  ["inbox", "show", ["--thread", "--after"]],
  ["inbox", "claim", ["--as", "--thread", "--lease-seconds"]],
  ["inbox", "heartbeat", ["--token", "--lease-seconds"]],
  ["inbox", "progress", ["--token", "--body", "--body-file", "--payload-json"]],
  ["inbox", "ask", ["--token", "--body", "--body-file", "--payload-json", "--wait", "--timeout-seconds"]],
  ["inbox", "wait", ["--as", "--thread", "--token", "--after", "--timeout-seconds"]],
  ["inbox", "done", ["--token", "--body", "--body-file", "--result-json"]],
  ["inbox", "fail", ["--token", "--body", "--body-file", "--payload-json"]],
  ["inbox", "release", ["--token"]],
];

/** Flag -> description, from commander's "Options:" and "Global Options:" sections. */
function optionsOf(help: string): Map<string, string> {
  const found = new Map<string, string>();
  let inOptions = false;
  let last: string | undefined;
  for (const line of help.split("\n")) {
    if (/^(Global )?Options:$/.test(line)) {
      inOptions = true;
      continue;
    }
    if (!inOptions) continue;
    if (line.trim() === "") {
      inOptions = false;
      continue;
    }
    const m = /^ {2}(?:-\w, )?(--[a-z][a-z-]*)(?: <[^>]+>| \[[^\]]+\])?(?:\s{2,}(.*))?$/.exec(line);
    if (m) {
      last = m[1]!;
      found.set(last, (m[2] ?? "").trim());
    } else if (last && /^\s{10,}\S/.test(line)) {
      found.set(last, `${found.get(last)} ${line.trim()}`);
    }
  }
  return found;
}

test.each(COMMANDS)("%s %s --help explains every flag and the output", (entry, name, flags) => {
  const r = run([name, "--help"], { entry });
  expect(r.code).toBe(0);
  const help = r.stdout;
  const options = optionsOf(help);
  const expected = [...flags, "--help", ...GLOBAL].sort();
  expect([...options.keys()].sort()).toEqual(expected);
  for (const [flag, description] of options) expect(description.length, `${entry} ${name} ${flag} has no description`).toBeGreaterThan(8);
  expect(help).toMatch(/\nOutput \(--json\):[^\n]*\n?[^\n]*\{"ok": true/);
  if (name !== "init" && name !== "status") expect(help).toMatch(/\nErrors/);
  expect(help.split("\n")[2]!.length, "a one-line description").toBeGreaterThan(10);
});

test("the top-level help documents exit codes and lists the loop commands", () => {
  const orch = run(["--help"]).stdout;
  for (const name of ["dispatch", "reconcile", "wait", "blocked", "answer", "retry", "reassign", "cancel", "status"]) expect(orch).toMatch(new RegExp(`\\n  ${name}\\b`));
  expect(orch).toMatch(/5 lease lost/);
  const inbox = run(["--help"], { entry: "inbox" }).stdout;
  for (const name of ["claim", "heartbeat", "progress", "ask", "wait", "done", "fail", "release", "list", "show"]) expect(inbox).toMatch(new RegExp(`\\n  ${name}\\b`));
  expect(inbox).toMatch(/4 invalid state \(.*already_claimed/s);
});
