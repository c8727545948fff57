// Compute budgets: a run stops at a stated number of CPU or wall-clock minutes, at a step boundary,
// and its learning-rate schedule is laid out over the steps the budget buys, measured by a short
// calibration at the start, so the rate still decays to its end.

export interface BudgetSetting {
  cpuMinutes?: number;
  wallMinutes?: number;
}

/** Human form of a budget, as parseBudget reads it. */
export const formatBudget = (b: BudgetSetting): string => (b.cpuMinutes !== undefined ? `${b.cpuMinutes}cpu-min` : `${b.wallMinutes}min`);

/** Seconds spent against a budget: CPU or wall time, plus what earlier sessions of a resumed run spent. */
class BudgetClock {
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
function plannedSteps(clock: BudgetClock, stepsDone: number, secondsPerStep: number): number {
  const remaining = Math.max(0, clock.limitSeconds - clock.spent());
  return stepsDone + Math.max(1, Math.floor(remaining / secondsPerStep));
}

/**
 * A budgeted run's plan: a clock, then after `calibrationSteps` steps (counted from the second, past
 * the allocator's and oneDNN's warm-up) the number of steps the budget buys, fixed from then on.
 */
export class BudgetPlan {
  readonly clock: BudgetClock;
  private calibrateFrom?: { step: number; spent: number };

  /** `steps`: a plan made earlier (a resumed run keeps its schedule). */
  constructor(
    readonly setting: BudgetSetting & { calibrationSteps: number },
    spentBefore = 0,
    public steps?: number,
  ) {
    this.clock = new BudgetClock(setting, spentBefore);
  }

  /** Call after each step with the global step count; returns the plan on the step it is made. */
  afterStep(step: number): number | undefined {
    if (this.steps !== undefined) return undefined;
    if (!this.calibrateFrom) {
      this.calibrateFrom = { step, spent: this.clock.spent() };
      return undefined;
    }
    const { step: from, spent } = this.calibrateFrom;
    if (step - from < this.setting.calibrationSteps) return undefined;
    this.steps = plannedSteps(this.clock, step, (this.clock.spent() - spent) / (step - from));
    return this.steps;
  }

  /** The budget is spent, or the planned steps are done. */
  finished(step: number): boolean {
    return this.clock.exhausted() || (this.steps !== undefined && step >= this.steps);
  }
}
