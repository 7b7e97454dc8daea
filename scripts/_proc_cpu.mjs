/** CPU time from Linux's /proc (USER_HZ = 100); NaN where there is no /proc. */
import { readFileSync } from "node:fs";

const CLK_TCK = 100;

/** utime+stime (fields 14-15) or, with `children`, cutime+cstime (16-17) of a process, in ms. */
function statCpuMs(file, children) {
  try {
    const stat = readFileSync(file, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const [a, b] = children ? [f[13], f[14]] : [f[11], f[12]];
    return ((Number(a) + Number(b)) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** CPU ms used by this process's reaped children. */
export const childrenCpuMs = () => statCpuMs("/proc/self/stat", true);

/** CPU ms used so far by a running process. */
export const procCpuMs = (pid) => statCpuMs(`/proc/${pid}/stat`, false);
