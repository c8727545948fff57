// Seedable random number generators, for reproducible sampling independent of the global one.
import { native, type GeneratorHandle } from './handle.js';
import type { Tensor } from './tensor.js';
import { wrap } from './handle.js';

export class Generator {
  readonly handle: GeneratorHandle;

  constructor(seed = 0, handle?: GeneratorHandle) {
    checkSeed(seed);
    this.handle = handle ?? native.newGenerator(seed);
  }

  manualSeed(seed: number): this {
    checkSeed(seed);
    native.generatorManualSeed(this.handle, seed);
    return this;
  }

  /** The full state as a uint8 tensor (for checkpoints). */
  getState(): Tensor {
    return wrap(native.generatorGetState(this.handle));
  }

  setState(state: Tensor): this {
    native.generatorSetState(this.handle, state.handle);
    return this;
  }
}

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`Generator: seed must be a non-negative integer, got ${seed}`);
}

/** libtorch's global CPU generator, which random ops use when given none. */
export function defaultGenerator(): Generator {
  return new Generator(0, native.defaultGenerator());
}

/** Seeds the global generator. */
export function manualSeed(seed: number): void {
  checkSeed(seed);
  native.manualSeed(seed);
}
