// Gradient checking: analytic gradients from autograd against central finite differences in float64.
//
// For a function f of some inputs, a random upstream gradient v is drawn for each floating
// output; the analytic side is autograd's vector-Jacobian product d/dx sum(v * f(x)), the numerical
// side differentiates the same scalar by (s(x + eps e_j) - s(x - eps e_j)) / 2 eps for every element j.
import { grad, noGrad } from '../autograd.js';
import { fromTypedArray } from '../creation.js';
import { isFloatingDType } from '../dtype.js';
import { randn, zerosLike } from '../generated/functions.js';
import { Generator } from '../generator.js';
import { tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';

export type GradcheckFn = (...inputs: Tensor[]) => Tensor | Tensor[];

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Absolute tolerance (default 1e-5). */
  atol?: number;
  /** Relative tolerance, against the numerical value (default 1e-3). */
  rtol?: number;
  /** Seed of the random upstream gradients (default 0). */
  seed?: number;
  /** Checks at most this many elements of each input, evenly spaced (default: all). */
  maxElements?: number;
}

export interface GradcheckMismatch {
  /** Position of the input in the argument list. */
  input: number;
  /** Flat (row-major) element index within that input. */
  index: number;
  analytic: number;
  numerical: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** Largest |analytic - numerical| over the checked elements. */
  maxError: number;
  /** Number of elements compared. */
  checked: number;
  mismatches: GradcheckMismatch[];
}

function outputsOf(value: Tensor | Tensor[]): Tensor[] {
  return Array.isArray(value) ? value : [value];
}

/**
 * Compares autograd with finite differences for every float64 input that requires grad; other
 * inputs (indices, masks, constants) are passed through unchanged. The inputs are not modified.
 */
export function gradcheck(fn: GradcheckFn, inputs: Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  return check(fn, inputs, options, false);
}

// `perturbedNeedsGrad`: the function differentiates internally (gradgradcheck), so the
// finite-difference evaluations run with grad enabled and perturbed inputs that require it.
function check(fn: GradcheckFn, inputs: Tensor[], options: GradcheckOptions, perturbedNeedsGrad: boolean): GradcheckResult {
  const op = perturbedNeedsGrad ? 'gradgradcheck' : 'gradcheck';
  const eps = options.eps ?? 1e-6;
  const atol = options.atol ?? 1e-5;
  const rtol = options.rtol ?? 1e-3;
  const checkedInputs = inputs.map((t, i) => ({ t, i })).filter(({ t }) => t.requiresGrad);
  if (checkedInputs.length === 0) throw new Error(`${op}: no input requires grad`);
  for (const { t, i } of checkedInputs) {
    if (t.dtype !== 'float64') throw new TypeError(`${op}: input ${i} is ${t.dtype}; finite differences need float64`);
  }

  return tidy(() => {
    const generator = new Generator(options.seed ?? 0);
    const outputs = outputsOf(fn(...inputs));
    // One upstream gradient per floating output; integer outputs (indices) carry none.
    const upstream = outputs.map((o) => (isFloatingDType(o.dtype) ? randn(o.shape, generator, 'float64') : undefined));
    const scalar = (outs: Tensor[]): number =>
      tidy(() => outs.reduce((acc, o, k) => (upstream[k] ? acc + o.toDtype('float64').mul(upstream[k]!).sum().item() : acc), 0));

    const differentiable = outputs.map((o, k) => ({ o, v: upstream[k] })).filter(({ o, v }) => v && o.requiresGrad);
    const analytic =
      differentiable.length === 0
        ? checkedInputs.map(() => undefined)
        : grad(
            differentiable.map(({ o }) => o),
            checkedInputs.map(({ t }) => t),
            { gradOutputs: differentiable.map(({ v, o }) => v!.toDtype(o.dtype)), allowUnused: true },
          );

    const mismatches: GradcheckMismatch[] = [];
    let maxError = 0;
    let checked = 0;
    checkedInputs.forEach(({ t, i }, k) => {
      const analyticValues = (analytic[k] ?? zerosLike(t)).toDtype('float64').contiguous().toTypedArray() as Float64Array;
      const data = t.detach().contiguous().toTypedArray() as Float64Array;
      const shape = t.shape;
      const evaluate = (): number => {
        const run = () =>
          tidy(() => {
            const perturbed = fromTypedArray(data, shape, { requiresGrad: perturbedNeedsGrad });
            return scalar(outputsOf(fn(...inputs.map((x, j) => (j === i ? perturbed : x)))));
          });
        return perturbedNeedsGrad ? run() : noGrad(run);
      };
      const n = data.length;
      const count = Math.min(n, options.maxElements ?? n);
      for (let c = 0; c < count; c++) {
        const j = count === n ? c : Math.floor((c * n) / count);
        const original = data[j];
        data[j] = original + eps;
        const plus = evaluate();
        data[j] = original - eps;
        const minus = evaluate();
        data[j] = original;
        const numerical = (plus - minus) / (2 * eps);
        const error = Math.abs(analyticValues[j] - numerical);
        maxError = Math.max(maxError, Number.isNaN(error) ? Infinity : error);
        checked++;
        if (!(error <= atol + rtol * Math.abs(numerical))) mismatches.push({ input: i, index: j, analytic: analyticValues[j], numerical });
      }
    });
    return { ok: mismatches.length === 0, maxError, checked, mismatches };
  });
}

/** gradcheck that throws an Error listing the first mismatches. */
export function assertGradcheck(fn: GradcheckFn, inputs: Tensor[], options: GradcheckOptions = {}, label = 'gradcheck'): GradcheckResult {
  const result = gradcheck(fn, inputs, options);
  if (!result.ok) {
    const shown = result.mismatches
      .slice(0, 5)
      .map((m) => `input ${m.input}[${m.index}]: analytic ${m.analytic}, numerical ${m.numerical}`)
      .join('; ');
    throw new Error(
      `${label}: ${result.mismatches.length} of ${result.checked} gradient elements disagree (max error ${result.maxError}): ${shown}`,
    );
  }
  return result;
}

/**
 * Second derivatives: checks the gradient of `fn` (built with createGraph) against finite
 * differences of that gradient, with a fixed random upstream gradient for the first derivative.
 */
export function gradgradcheck(fn: GradcheckFn, inputs: Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  const firstOrder = (...xs: Tensor[]): Tensor[] => {
    const outs = outputsOf(fn(...xs)).filter((o) => o.requiresGrad);
    const generator = new Generator((options.seed ?? 0) + 1);
    const gradOutputs = outs.map((o) => randn(o.shape, generator, o.dtype));
    const wrt = xs.filter((_, j) => inputs[j].requiresGrad);
    return grad(outs, wrt, { gradOutputs, createGraph: true, allowUnused: true }).map((g, j) => g ?? zerosLike(wrt[j]));
  };
  return check(firstOrder, inputs, options, true);
}
