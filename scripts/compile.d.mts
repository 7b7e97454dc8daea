export const TARGETS: string[];
export const binDir: string;
export function binaryName(target: string): string;
export function compile(targets?: string[], options?: { outDir?: string; bundle?: string }): Promise<string[]>;
export function writeChecksums(dir?: string): void;
