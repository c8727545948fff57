// Grad-mode scopes and functional gradients.
import { dtypeCodes } from './dtype.js';
import { handles, native, wrap } from './handle.js';
import type { Tensor } from './tensor.js';

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const previous = native.setGradEnabled(enabled);
  try {
    const result = fn();
    if (result instanceof Promise) throw new Error('noGrad/enableGrad: the function must be synchronous');
    return result;
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs `fn` without recording operations for autograd. */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

/**
 * Runs `fn` with autocast on the CPU, as `torch.autocast('cpu', dtype=torch.bfloat16)`: matmuls
 * and convolutions compute in bfloat16 (fast on CPUs with AVX512-BF16 or AMX), precision-sensitive
 * ops stay in float32, and the gradients of float32 parameters come back in float32.
 */
export function autocast<T>(device: 'cpu', dtype: 'bfloat16' | 'float16', fn: () => T): T {
  if (device !== 'cpu') throw new Error(`autocast: only 'cpu' is supported here, got '${device}'`);
  const [enabled, previous] = native.autocastCpuEnter(dtypeCodes[dtype]);
  try {
    const result = fn();
    if (result instanceof Promise) throw new Error('autocast: the function must be synchronous');
    return result;
  } finally {
    native.autocastCpuExit(enabled, previous);
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

export interface GradOptions {
  gradOutputs?: Tensor[];
  retainGraph?: boolean;
  /** Builds a graph of the gradient itself, for higher-order terms such as gradient penalties. */
  createGraph?: boolean;
  /** Returns undefined for inputs that the outputs do not depend on, instead of throwing. */
  allowUnused?: boolean;
}

/** Gradients of `outputs` with respect to `inputs`, as torch.autograd.grad. */
export function grad(outputs: Tensor | Tensor[], inputs: Tensor | Tensor[], options: GradOptions = {}): (Tensor | undefined)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  const ins = Array.isArray(inputs) ? inputs : [inputs];
  const result = native.autogradGrad(
    handles(outs),
    handles(ins),
    options.gradOutputs ? handles(options.gradOutputs) : undefined,
    options.retainGraph,
    options.createGraph ?? false,
    options.allowUnused ?? false,
  );
  return result.map((h) => (h === undefined ? undefined : wrap(h)));
}
