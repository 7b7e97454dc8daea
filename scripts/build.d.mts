export function buildBundle(outfile?: string): Promise<string>;
