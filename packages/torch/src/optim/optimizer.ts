// The optimizer base: parameter groups, per-parameter state and a PyTorch-shaped state dict.
import { noGrad } from '../autograd.js';
import { keep, tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';

export interface ParamGroup<H> {
  params: Tensor[];
  options: H;
}

export type ParamState = Record<string, Tensor | number>;

export interface OptimizerStateDict<H> {
  state: Record<number, ParamState>;
  paramGroups: (H & { params: number[] })[];
}

export abstract class Optimizer<H extends { lr: number }> {
  readonly paramGroups: ParamGroup<H>[];
  readonly state = new Map<Tensor, ParamState>();

  constructor(params: Tensor[] | { params: Tensor[]; options?: Partial<H> }[], defaults: H) {
    const groups =
      params.length > 0 && !('params' in params[0])
        ? [{ params: params as Tensor[] }]
        : (params as { params: Tensor[]; options?: Partial<H> }[]);
    this.paramGroups = groups.map((g) => ({ params: g.params, options: { ...defaults, ...('options' in g ? g.options : {}) } }));
    if (this.paramGroups.every((g) => g.params.length === 0)) throw new Error(`${this.constructor.name}: got an empty parameter list`);
    for (const g of this.paramGroups) this.validate(g.options);
  }

  protected abstract validate(options: H): void;

  /**
   * Updates a group's parameters that have gradients, all together (multi-tensor ops: a few native
   * calls per step, as PyTorch's foreach implementations); runs under noGrad inside a scope.
   */
  protected abstract updateGroup(params: Tensor[], grads: Tensor[], states: ParamState[], options: H): void;

  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const group of this.paramGroups) {
          const params = group.params.filter((p) => p.grad);
          if (!params.length) continue;
          const states = params.map((p) => {
            let state = this.state.get(p);
            if (!state) this.state.set(p, (state = {}));
            return state;
          });
          this.updateGroup(
            params,
            params.map((p) => p.grad!),
            states,
            group.options,
          );
          for (const state of states) for (const v of Object.values(state)) if (typeof v !== 'number') keep(v);
        }
      }),
    );
  }

  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.grad = undefined;
  }

  get lr(): number {
    return this.paramGroups[0].options.lr;
  }

  setLr(lr: number | number[]): void {
    this.paramGroups.forEach((g, i) => (g.options.lr = typeof lr === 'number' ? lr : lr[i]));
  }

  /** State keyed by parameter index across groups, as PyTorch's optimizer.state_dict(). */
  stateDict(): OptimizerStateDict<H> {
    const state: Record<number, ParamState> = {};
    let index = 0;
    const paramGroups = this.paramGroups.map((g) => {
      const ids = g.params.map((p) => {
        const s = this.state.get(p);
        if (s) state[index] = { ...s };
        return index++;
      });
      return { ...g.options, params: ids };
    });
    return { state, paramGroups };
  }

  loadStateDict(sd: OptimizerStateDict<H>): void {
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(
        `${this.constructor.name}.loadStateDict: expected ${this.paramGroups.length} parameter groups, got ${sd.paramGroups.length}`,
      );
    }
    let index = 0;
    sd.paramGroups.forEach((saved, gi) => {
      const group = this.paramGroups[gi];
      if (saved.params.length !== group.params.length) {
        throw new Error(
          `${this.constructor.name}.loadStateDict: group ${gi} has ${group.params.length} parameters, the saved state ${saved.params.length}`,
        );
      }
      const { params: _ids, ...options } = saved;
      group.options = { ...group.options, ...(options as unknown as H) };
      for (const p of group.params) {
        const s = sd.state[index++];
        if (s) {
          // Copies, as PyTorch deep-copies: the state is updated in place and must not be shared with the source.
          const copy: ParamState = {};
          for (const [k, v] of Object.entries(s)) copy[k] = typeof v === 'number' ? v : keep(noGrad(() => v.clone()));
          this.state.set(p, copy);
        } else this.state.delete(p);
      }
    });
  }
}
