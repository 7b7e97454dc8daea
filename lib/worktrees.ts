/**
 * Git worktrees for code-mode attempts: a fresh branch and worktree per
 * attempt from a committed base, made through dax (never a shell string).
 * (Being built: see issue 5.)
 */
import type { CodeWorkspace } from "./attempts.ts";
import { OrchError } from "./errors.ts";

export interface WorkspaceRequest {
  run: string;
  task: string;
  attempt: number;
  /** The repository (default: the one containing cwd). */
  repoPath?: string;
  /** Base ref (default: the repo's HEAD commit). */
  baseRef?: string;
  /** Where worktrees go (default: `.orch/worktrees` in the repo; relative paths resolve against the repo). */
  workspaceRoot?: string;
  cwd: string;
}

export interface PreparedWorkspace extends CodeWorkspace {
  /** Notes for the leader, e.g. that uncommitted changes in the main checkout are not in the worktree. */
  notes: string[];
  main_checkout_dirty: boolean;
}

export async function createWorkspace(_req: WorkspaceRequest): Promise<PreparedWorkspace> {
  throw new OrchError("invalid_state", "code mode is being built (see issue 5)");
}

/** Undoes createWorkspace (used when the dispatch transaction fails). */
export async function discardWorkspace(_ws: CodeWorkspace): Promise<void> {}
