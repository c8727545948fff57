import { foreachAdd, foreachAdd_, foreachMul_ } from '../generated/functions.js';
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

  protected updateGroup(params: Tensor[], grads: Tensor[], states: ParamState[], o: SGDOptions): void {
    let d = o.weightDecay ? foreachAdd(grads, params, o.weightDecay) : grads;
    if (o.momentum) {
      const running = states.flatMap((s, i) => (s.momentumBuffer ? [i] : []));
      if (running.length) {
        const buffers = running.map((i) => states[i].momentumBuffer as Tensor);
        foreachMul_(buffers, o.momentum);
        foreachAdd_(
          buffers,
          running.map((i) => d[i]),
          1 - o.dampening!,
        );
      }
      states.forEach((s, i) => (s.momentumBuffer ??= d[i].clone()));
      const buffers = states.map((s) => s.momentumBuffer as Tensor);
      d = o.nesterov ? foreachAdd(d, buffers, o.momentum) : buffers;
    }
    foreachAdd_(params, d, -o.lr);
  }
}
