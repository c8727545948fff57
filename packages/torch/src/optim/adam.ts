import type { Tensor } from '../tensor.js';
import { zerosLike } from '../generated/functions.js';
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

  protected update(param: Tensor, grad: Tensor, state: ParamState, o: AdamOptions): void {
    const [beta1, beta2] = o.betas!;
    const step = ((state.step as number | undefined) ?? 0) + 1;
    state.step = step;
    if (this.decoupled) param.mul_(1 - o.lr * o.weightDecay!);
    const g = !this.decoupled && o.weightDecay ? grad.add(param, o.weightDecay) : grad;
    const expAvg = (state.expAvg as Tensor | undefined) ?? zerosLike(param);
    const expAvgSq = (state.expAvgSq as Tensor | undefined) ?? zerosLike(param);
    state.expAvg = expAvg.mul_(beta1).add_(g, 1 - beta1);
    state.expAvgSq = expAvgSq.mul_(beta2).addcmul_(g, g, 1 - beta2);
    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const denom = expAvgSq.sqrt().div_(Math.sqrt(biasCorrection2)).add_(o.eps!);
    param.addcdiv_(expAvg, denom, -o.lr / biasCorrection1);
  }
}

/** AdamW (Loshchilov & Hutter): decoupled weight decay, default 1e-2 as in PyTorch. */
export class AdamW extends Adam {
  protected override readonly decoupled = true;

  constructor(params: Tensor[] | { params: Tensor[]; options?: Partial<AdamOptions> }[], options: AdamOptions) {
    super(params, { weightDecay: 1e-2, ...options });
  }
}
