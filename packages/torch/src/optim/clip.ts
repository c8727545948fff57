import { noGrad } from '../autograd.js';
import { stack } from '../generated/functions.js';
import { tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';

/** Scales gradients in place so their joint norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm_(params: Tensor[], maxNorm: number, normType = 2): number {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm_: 'maxNorm' must be positive, got ${maxNorm}`);
  return noGrad(() =>
    tidy(() => {
      const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== undefined);
      if (grads.length === 0) return 0;
      const norms = grads.map((g) => (normType === Infinity ? g.abs().max() : g.norm(normType)));
      const total = normType === Infinity ? stack(norms).max() : stack(norms).norm(normType);
      const totalNorm = total.item();
      const coef = maxNorm / (totalNorm + 1e-6);
      if (coef < 1) for (const g of grads) g.mul_(coef);
      return totalNorm;
    }),
  );
}
