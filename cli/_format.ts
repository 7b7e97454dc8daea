/** Text rendering for people: aligned tables, status words, colour on a TTY only. */
import * as rt from "../lib/_runtime.ts";

let colorEnabled = false;

export function setColor(isTTY: boolean): void {
  colorEnabled = isTTY && rt.env("NO_COLOR") === undefined && rt.env("TERM") !== "dumb";
}

const CODES: Record<string, [number, number]> = {
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  blue: [34, 39],
  dim: [2, 22],
  bold: [1, 22],
};

export function paint(style: keyof typeof CODES, text: string): string {
  if (!colorEnabled) return text;
  const [open, close] = CODES[style]!;
  return `\u001b[${open}m${text}\u001b[${close}m`;
}

const STATUS_STYLE: Record<string, keyof typeof CODES> = {
  done: "green",
  running: "blue",
  dispatched: "blue",
  claimed: "blue",
  blocked: "yellow",
  failed: "red",
  cancelled: "dim",
  pending: "dim",
  ready: "bold",
};

export function status(word: string): string {
  const style = STATUS_STYLE[word];
  return style ? paint(style, word) : word;
}

// deno-lint-ignore no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
const visibleLength = (s: string) => s.replace(ANSI, "").length;

/** Aligns rows into columns under a header; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return "";
  const all = [header.map((h) => paint("bold", h)), ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => visibleLength(r[i] ?? ""))));
  return all
    .map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell + " ".repeat(widths[i]! - visibleLength(cell)))).join("  ").trimEnd())
    .join("\n");
}

export function oneLine(text: string, max = 60): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** "in 4m 10s" / "2m ago" for lease expiries. */
export function relative(iso: string | null): string {
  if (!iso) return "-";
  const delta = Date.parse(iso) - rt.now();
  const abs = Math.abs(delta);
  const s = Math.round(abs / 1000);
  const text = s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return delta >= 0 ? `in ${text}` : `${text} ago`;
}

export function kv(pairs: readonly [string, string | number | null | undefined][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.filter(([, v]) => v !== undefined).map(([k, v]) => `${paint("dim", `${k}:`.padEnd(width + 1))} ${v ?? "-"}`).join("\n");
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
