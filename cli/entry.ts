/**
 * Process entry for the bundle and the compiled binaries. The entry point is
 * chosen by the name the program was started under (`inbox`, `orch-worker-brief`,
 * else `orch`), or by ORCH_ENTRY, which the skill launchers set.
 */
import process from "node:process";
import { entryFromName, runCli } from "./main.ts";
import * as rt from "../lib/_runtime.ts";
import { timingLine } from "./_timing.ts";

export async function runFromProcess(args: string[] = rt.argv(), name?: string): Promise<void> {
  // a reader that stops early (`orch status | head`) is not an error worth a stack trace
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw err;
  });
  const entry = entryFromName(rt.env("ORCH_ENTRY") ?? name ?? (rt.runtimeInfo().compiled ? rt.execPath() : rt.scriptPath()));
  const code = await runCli(args, entry, {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    isTTY: process.stdout.isTTY === true,
  });
  const timing = timingLine();
  if (timing) process.stderr.write(timing);
  process.exitCode = code;
}
