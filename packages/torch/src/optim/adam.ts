import type { Tensor } from '../tensor.js';
import {
  foreachAdd,
  foreachAdd_,
  foreachAddcdiv_,
  foreachAddcmul_,
  foreachAddScalar_,
  foreachDiv_,
  foreachMul_,
  foreachSqrt,
  zerosLike,
} from '../generated/functions.js';
import { Optimizer, type ParamState } from './optimizer.js';

export interface AdamOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** Adam (Kingma & Ba); weight decay is L2 added to the gradient, as torch.optim.Adam. */
export class Adam extends Optimizer<AdamOptions> {
  protected readonly decoupled: boolean = false;

  constructor(params: Tensor[] | { params: Tensor[]; options?: Partial<AdamOptions> }[], options: AdamOptions) {
    super(params, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, ...options });
  }

  protected validate(o: AdamOptions): void {
    const name = this.constructor.name;
    if (!(o.lr >= 0)) throw new RangeError(`${name}: 'lr' must be non-negative, got ${o.lr}`);
    const [b1, b2] = o.betas!;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new RangeError(`${name}: 'betas' must be in [0, 1), got [${o.betas}]`);
    if (!(o.eps! >= 0)) throw new RangeError(`${name}: 'eps' must be non-negative, got ${o.eps}`);
    if (!(o.weightDecay! >= 0)) throw new RangeError(`${name}: 'weightDecay' must be non-negative, got ${o.weightDecay}`);
  }

  protected updateGroup(params: Tensor[], grads: Tensor[], states: ParamState[], o: AdamOptions): void {
    const [beta1, beta2] = o.betas!;
    if (this.decoupled && o.weightDecay) foreachMul_(params, 1 - o.lr * o.weightDecay);
    const g = !this.decoupled && o.weightDecay ? foreachAdd(grads, params, o.weightDecay) : grads;
    for (const [i, s] of states.entries()) {
      s.step = ((s.step as number | undefined) ?? 0) + 1;
      s.expAvg ??= zerosLike(params[i]);
      s.expAvgSq ??= zerosLike(params[i]);
    }
    const expAvg = states.map((s) => s.expAvg as Tensor);
    const expAvgSq = states.map((s) => s.expAvgSq as Tensor);
    foreachMul_(expAvg, beta1);
    foreachAdd_(expAvg, g, 1 - beta1);
    foreachMul_(expAvgSq, beta2);
    foreachAddcmul_(expAvgSq, g, g, 1 - beta2);
    // Bias corrections depend on each parameter's step count: one batch of ops per count (usually one).
    const byStep = new Map<number, number[]>();
    states.forEach((s, i) => byStep.set(s.step as number, [...(byStep.get(s.step as number) ?? []), i]));
    for (const [step, members] of byStep) {
      const pick = <T>(xs: T[]) => members.map((i) => xs[i]);
      const denom = foreachSqrt(pick(expAvgSq));
      foreachDiv_(denom, Math.sqrt(1 - beta2 ** step));
      foreachAddScalar_(denom, o.eps!);
      foreachAddcdiv_(pick(params), pick(expAvg), denom, -o.lr / (1 - beta1 ** step));
    }
  }
}

/** AdamW (Loshchilov & Hutter): decoupled weight decay, default 1e-2 as in PyTorch. */
export class AdamW extends Adam {
  protected override readonly decoupled = true;

  constructor(params: Tensor[] | { params: Tensor[]; options?: Partial<AdamOptions> }[], options: AdamOptions) {
    super(params, { weightDecay: 1e-2, ...options });
  }
}
