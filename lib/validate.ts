/**
 * Input rules for everything that crosses the edge (CLI flags, library
 * callers). zod schemas live here so the CLI and mod.ts users share them;
 * inside lib/ the values are trusted.
 */
import { z } from "zod";
import { OrchError } from "./errors.ts";

/** Documented size limits. */
export const LIMITS = {
  idLength: 64,
  titleLength: 200,
  textBytes: 16 * 1024,
  bodyBytes: 64 * 1024,
  jsonBytes: 64 * 1024,
} as const;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const byteLength = (s: string) => new TextEncoder().encode(s).length;

/** Run, task and worker ids: safe in file names, branch names and on every OS. */
export const idSchema = (what: string) =>
  z.string().regex(ID_RE, {
    message: `${what} must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`,
  }).refine((s) => !s.includes(".."), { message: `${what} must not contain '..'` })
    .refine((s) => !s.endsWith(".lock") && !s.endsWith("."), { message: `${what} must not end in '.' or '.lock'` });

export const textSchema = (what: string, maxBytes: number = LIMITS.textBytes) =>
  z.string().refine((s) => byteLength(s) <= maxBytes, { message: `${what} is longer than the limit of ${maxBytes} bytes` });

export const titleSchema = z.string().min(1, { message: "title must not be empty" })
  .max(LIMITS.titleLength, { message: `title must be at most ${LIMITS.titleLength} characters` })
  .refine((s) => !/[\r\n]/.test(s), { message: "title must be one line" });

export const bodySchema = (what = "body") =>
  z.string().refine((s) => s.trim().length > 0, { message: `${what} must not be empty` })
    .refine((s) => byteLength(s) <= LIMITS.bodyBytes, { message: `${what} is longer than the limit of ${LIMITS.bodyBytes} bytes` });

/** Parses a JSON argument; `objectOnly` demands a JSON object. */
export function parseJsonArg(flag: string, text: string, objectOnly = true): unknown {
  if (byteLength(text) > LIMITS.jsonBytes) {
    throw new OrchError("usage", `${flag} is longer than the limit of ${LIMITS.jsonBytes} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new OrchError("usage", `${flag} is not valid JSON: ${(err as Error).message}`, {
      hint: `${flag} takes a JSON object, e.g. '{"kind":"analysis"}'`,
    });
  }
  if (objectOnly && (value === null || typeof value !== "object" || Array.isArray(value))) {
    throw new OrchError("usage", `${flag} must be a JSON object ({...}), not ${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value}`, {
      hint: `${flag} takes a JSON object, e.g. '{"kind":"analysis"}'`,
    });
  }
  return value;
}

/** Validates one value with a schema, turning failures into a usage error naming the flag. */
export function check<T>(schema: z.ZodType<T>, value: unknown, flag: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new OrchError("usage", `${flag}: ${issue?.message ?? "invalid value"}`, { details: { flag } });
}
