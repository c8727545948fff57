// Learning-rate schedules as closed forms of the step count, so a resumed run gets the same rates.
import type { Optimizer } from './optimizer.js';

export abstract class LRScheduler {
  readonly baseLrs: number[];
  lastStep = 0;

  constructor(protected readonly optimizer: Optimizer<{ lr: number }>) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.options.lr);
  }

  /** The factor applied to each base rate after `step` steps. */
  protected abstract factor(step: number): number;

  step(): void {
    this.lastStep++;
    this.apply();
  }

  getLastLr(): number[] {
    return this.baseLrs.map((lr) => lr * this.factor(this.lastStep));
  }

  private apply(): void {
    this.optimizer.setLr(this.getLastLr());
  }

  stateDict(): { lastStep: number; baseLrs: number[] } {
    return { lastStep: this.lastStep, baseLrs: [...this.baseLrs] };
  }

  loadStateDict(sd: { lastStep: number }): void {
    this.lastStep = sd.lastStep;
    this.apply();
  }
}

/** Multiplies the rate by gamma at each milestone, as torch's MultiStepLR. */
export class MultiStepLR extends LRScheduler {
  constructor(
    optimizer: Optimizer<{ lr: number }>,
    readonly milestones: number[],
    readonly gamma = 0.1,
  ) {
    super(optimizer);
    if (milestones.some((m, i) => !Number.isInteger(m) || m < 0 || (i > 0 && m <= milestones[i - 1]))) {
      throw new RangeError(`MultiStepLR: 'milestones' must be increasing non-negative integers, got [${milestones}]`);
    }
  }

  protected factor(step: number): number {
    return this.gamma ** this.milestones.filter((m) => m <= step).length;
  }
}

/** Linear warmup from 0 over warmupSteps, then a cosine decay to minLr at totalSteps. */
export class CosineWithWarmup extends LRScheduler {
  constructor(
    optimizer: Optimizer<{ lr: number }>,
    readonly options: { warmupSteps: number; totalSteps: number; minLrRatio?: number },
  ) {
    super(optimizer);
    const { warmupSteps, totalSteps } = options;
    if (!(warmupSteps >= 0 && totalSteps > warmupSteps)) {
      throw new RangeError(`CosineWithWarmup: need 0 <= warmupSteps < totalSteps, got ${warmupSteps} and ${totalSteps}`);
    }
    this.optimizer.setLr(this.getLastLr());
  }

  protected factor(step: number): number {
    const { warmupSteps, totalSteps, minLrRatio = 0 } = this.options;
    if (step < warmupSteps) return (step + 1) / (warmupSteps + 1);
    const progress = Math.min(1, (step - warmupSteps) / (totalSteps - warmupSteps));
    return minLrRatio + (1 - minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * progress));
  }
}
