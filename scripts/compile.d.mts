export const TARGETS: string[];
export const binDir: string;
export function binaryName(target: string): string;
export function compile(targets?: string[]): Promise<string[]>;
