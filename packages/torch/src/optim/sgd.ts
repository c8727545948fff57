import type { Tensor } from '../tensor.js';
import { Optimizer, type ParamState } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** Stochastic gradient descent with PyTorch's momentum, dampening, Nesterov and weight decay. */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: Tensor[] | { params: Tensor[]; options?: Partial<SGDOptions> }[], options: SGDOptions) {
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...options });
  }

  protected validate(o: SGDOptions): void {
    if (!(o.lr >= 0)) throw new RangeError(`SGD: 'lr' must be non-negative, got ${o.lr}`);
    if (!(o.momentum! >= 0)) throw new RangeError(`SGD: 'momentum' must be non-negative, got ${o.momentum}`);
    if (!(o.weightDecay! >= 0)) throw new RangeError(`SGD: 'weightDecay' must be non-negative, got ${o.weightDecay}`);
    if (o.nesterov && (o.momentum! <= 0 || o.dampening !== 0))
      throw new RangeError("SGD: 'nesterov' needs a positive momentum and zero dampening");
  }

  protected update(param: Tensor, grad: Tensor, state: ParamState, o: SGDOptions): void {
    let d = o.weightDecay ? grad.add(param, o.weightDecay) : grad;
    if (o.momentum) {
      const previous = state.momentumBuffer as Tensor | undefined;
      const buf = previous ? previous.mul_(o.momentum).add_(d, 1 - o.dampening!) : d.clone();
      state.momentumBuffer = buf;
      d = o.nesterov ? d.add(buf, o.momentum) : buf;
    }
    param.add_(d, -o.lr);
  }
}
