// Compute budgets: a run stops at a stated number of CPU or wall-clock minutes, at a step boundary,
// and its learning-rate schedule is laid out over the steps the budget buys, measured by a short
// calibration at the start, so the rate still decays to its end.

export { parseBudget } from '../config/schema.js';

export interface BudgetSetting {
  cpuMinutes?: number;
  wallMinutes?: number;
}

/** Human form of a budget, as parseBudget reads it. */
export const formatBudget = (b: BudgetSetting): string => (b.cpuMinutes !== undefined ? `${b.cpuMinutes}cpu-min` : `${b.wallMinutes}min`);

/** Seconds spent against a budget: CPU or wall time, plus what earlier sessions of a resumed run spent. */
export class BudgetClock {
  private readonly cpuStart = process.cpuUsage();
  private readonly wallStart = performance.now();
  readonly limitSeconds: number;

  constructor(
    readonly setting: BudgetSetting,
    private readonly spentBefore = 0,
  ) {
    this.limitSeconds = 60 * (setting.cpuMinutes ?? setting.wallMinutes!);
  }

  /** Seconds spent so far, across resumed sessions. */
  spent(): number {
    if (this.setting.cpuMinutes === undefined) return this.spentBefore + (performance.now() - this.wallStart) / 1000;
    const { user, system } = process.cpuUsage(this.cpuStart);
    return this.spentBefore + (user + system) / 1e6;
  }

  exhausted(): boolean {
    return this.spent() >= this.limitSeconds;
  }
}

/**
 * Steps a budget buys: the steps done so far plus the remaining seconds at the calibrated cost
 * per step (at least one more step).
 */
export function plannedSteps(clock: BudgetClock, stepsDone: number, secondsPerStep: number): number {
  const remaining = Math.max(0, clock.limitSeconds - clock.spent());
  return stepsDone + Math.max(1, Math.floor(remaining / secondsPerStep));
}
