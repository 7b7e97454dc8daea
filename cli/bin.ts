/** The bundle's and binaries' main module. */
import { runFromProcess } from "./entry.ts";

await runFromProcess();
