/** `orch-worker-brief`: renders a saved dispatch result into a worker prompt. */
import type { Command } from "commander";
import { act } from "./main.ts";
import { OrchError } from "../lib/errors.ts";

export function registerBrief(program: Command): void {
  act(
    program.option("--dispatch-json <file>", "the saved output of `orch --json dispatch` ('-' for stdin)")
      .option("--template <file>", "a template file instead of the default"),
    async () => {
      throw new OrchError("internal", "orch-worker-brief is being built (see issue 6)");
    },
  );
}
