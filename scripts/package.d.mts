export const SKILLS: string[];
export const LAUNCHERS: string[];
export const skillsOut: string;
export function packageSkills(options?: { outDir?: string; binDir?: string; bundle?: string; targets?: string[] }): string[];
export function packageSize(dir: string): number;
