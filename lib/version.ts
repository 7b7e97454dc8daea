/** The version of orch, and what it runs on. */
import { runtimeInfo } from "./_runtime.ts";
import { sqliteVersion } from "./sqlite.ts";
import { SCHEMA_VERSION } from "./schema.ts";

export const VERSION = "0.1.0";

export interface VersionInfo {
  version: string;
  runtime: string;
  runtime_version: string;
  compiled: boolean;
  sqlite: string;
  schema_version: number;
}

export async function versionInfo(): Promise<VersionInfo> {
  const rt = runtimeInfo();
  return { version: VERSION, runtime: rt.name, runtime_version: rt.version, compiled: rt.compiled, sqlite: await sqliteVersion(), schema_version: SCHEMA_VERSION };
}
