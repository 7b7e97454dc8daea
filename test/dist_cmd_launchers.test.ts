/**
 * The Windows `.cmd` launchers, run by a real cmd.exe under Wine where Wine is
 * installed (it is not part of CI: skipped there, saying so). The bun-compiled
 * Windows binary itself needs bcryptprimitives.dll, which Debian 12's Wine 8
 * lacks, so a copy of Wine's own cmd.exe stands in for it: that shows the
 * launcher picks bin\orch-windows-x64.exe, sets ORCH_ENTRY and
 * ORCH_INBOX_COMMAND, passes the arguments and returns the exit code.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import * as path from "node:path";
import { ROOT, tempDir } from "./_helpers.ts";

const WINE = ["/usr/lib/wine/wine64", "/usr/bin/wine64", "/usr/bin/wine"].find((p) => existsSync(p));
const skip = !WINE || process.platform !== "linux";

let t: ReturnType<typeof tempDir>;
let env: NodeJS.ProcessEnv;

const winPath = (p: string) => `Z:${p.replace(/\//g, "\\")}`;

function wineCmd(args: string[]) {
  const r = spawnSync(WINE!, ["cmd", "/c", ...args], { env, encoding: "utf8", timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout.replace(/\r\n/g, "\n"), stderr: r.stderr.replace(/\r\n/g, "\n") };
}

beforeAll(() => {
  if (skip) return;
  t = tempDir("orch-wine-");
  env = { ...process.env, WINEPREFIX: path.join(t.dir, "prefix"), WINEDEBUG: "-all", DISPLAY: "" };
  // the first start creates the prefix
  const init = spawnSync(WINE!, ["cmd", "/c", "echo", "ready"], { env, encoding: "utf8", timeout: 180_000 });
  if (!init.stdout.includes("ready")) throw new Error(`wine did not start: ${init.stderr}`);
}, 200_000);
afterAll(() => t?.cleanup());

describe.skipIf(skip)(`the .cmd launchers under Wine's cmd.exe${skip ? " (SKIPPED: Wine is not installed; apt-get install wine64)" : ""}`, () => {
  test("with a binary for the host: runs it with ORCH_ENTRY and ORCH_INBOX_COMMAND set, arguments as given, exit code back", () => {
    const skills = path.join(t.dir, "with-bin");
    for (const skill of ["orch", "inbox"]) {
      const assets = path.join(skills, skill, "assets");
      mkdirSync(path.join(assets, "bin"), { recursive: true });
      for (const l of ["orch", "inbox", "orch-worker-brief"]) copyFileSync(path.join(ROOT, "skills", skill, "assets", `${l}.cmd`), path.join(assets, `${l}.cmd`));
      copyFileSync(path.join(env.WINEPREFIX!, "drive_c", "windows", "system32", "cmd.exe"), path.join(assets, "bin", "orch-windows-x64.exe"));
    }
    const r = wineCmd([winPath(path.join(skills, "orch", "assets", "orch-worker-brief.cmd")), "/c", "echo entry=%ORCH_ENTRY% inbox=%ORCH_INBOX_COMMAND% & exit 7"]);
    expect(r.code).toBe(7);
    expect(r.stdout.trim()).toBe(`entry=orch-worker-brief inbox=${winPath(path.join(skills, "inbox", "assets", "inbox.cmd"))}`);
  });

  test("with no binary and no JavaScript runtime: exit 127 and what to install", () => {
    const assets = path.join(t.dir, "no-bin", "orch", "assets");
    mkdirSync(assets, { recursive: true });
    copyFileSync(path.join(ROOT, "skills", "orch", "assets", "inbox.cmd"), path.join(assets, "inbox.cmd"));
    const r = wineCmd([winPath(path.join(assets, "inbox.cmd")), "--version"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain("inbox: cannot run here: there is no binary for this host (Windows AMD64");
    expect(r.stderr).toContain("linux-x64, linux-arm64 (glibc), darwin-x64, darwin-arm64, windows-x64");
    expect(r.stderr).toContain("Node.js 20 or later");
  });
});
