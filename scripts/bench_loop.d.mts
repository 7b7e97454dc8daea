export interface LatencySummary { n: number; median_ms: number; p95_ms: number; min_ms: number; max_ms: number }
export interface LoopBench {
  name: "loop";
  trials: number;
  goal_p95_ms: number;
  ask_to_leader_wait: LatencySummary;
  answer_to_worker_ask_wait: LatencySummary;
  meets_goal: boolean;
}
export const GOAL_P95_MS: number;
export function benchLoop(options?: { trials?: number; settleMs?: number; log?: (line: string) => void; bundle?: string; tmp?: string }): Promise<LoopBench>;
