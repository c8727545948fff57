// Linear probe: multinomial logistic regression on frozen, standardized features, fitted full-batch
// with L-BFGS. The L2 weight decay is chosen on a held-out part of train (never on test), then the
// model is refitted on all of train with the chosen value.
import { cat, fromTypedArray, nn, noGrad, ones, tidy, type Tensor } from '@pretext/torch';
import {
  checkTrainTest,
  classificationReport,
  ComputeMeter,
  probeResult,
  selectRows,
  tensorIndex,
  type EvalResult,
  type LabeledFeatures,
} from './metrics.js';
import { indicesByClass, seededRandom, shuffled } from '../util/random.js';

export interface LinearProbeOptions {
  /** Candidate L2 strengths (on the mean loss); default 1e-6 ... 1e-1. */
  weightDecays?: number[];
  /** Skip the selection and use this weight decay. */
  weightDecay?: number;
  /** Fraction of each class of train held out to choose the weight decay (default 0.1). */
  heldOutFraction?: number;
  /** L-BFGS iterations per fit (default 100, as scikit-learn). */
  maxIterations?: number;
  /** Stop when the largest gradient entry falls below this (default 1e-4, as scikit-learn). */
  tolerance?: number;
  seed?: number;
}

export const DEFAULT_WEIGHT_DECAYS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

/** Train statistics applied to train and test: each feature to zero mean and unit variance. */
export function standardize(train: Tensor, test: Tensor): [Tensor, Tensor] {
  return tidy(() => {
    const x = train.flatten(1);
    const mean = x.mean(0, true);
    const std = x.std(0, 0, true).clamp(1e-6, null);
    return [x.sub(mean).div(std), test.flatten(1).sub(mean).div(std)];
  });
}

export interface LogisticFit {
  /** (D + 1) x C row-major: weights, then the bias row. */
  theta: Float64Array;
  iterations: number;
  /** Loss (and gradient) evaluations: full passes over the data. */
  evaluations: number;
  loss: number;
}

const withBias = (x: Tensor): Tensor => cat([x, ones([x.shape[0], 1])], 1);

// Vector algebra of the optimizer in plain JS: the parameters are small, the data is not.
const dot = (a: Float64Array, b: Float64Array): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
/** a + t * b */
const axpy = (a: Float64Array, t: number, b: Float64Array): Float64Array => a.map((v, i) => v + t * b[i]);
const maxAbs = (a: Float64Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/**
 * Fits softmax regression with L2 weight decay (bias not decayed) by L-BFGS with Armijo backtracking.
 * `init` warm-starts from an earlier theta.
 */
export function fitLogisticRegression(
  x: Tensor,
  labels: Int32Array,
  numClasses: number,
  options: { weightDecay: number; maxIterations?: number; tolerance?: number; history?: number; init?: Float64Array },
): LogisticFit {
  const { weightDecay } = options;
  const maxIterations = options.maxIterations ?? 100;
  const tolerance = options.tolerance ?? 1e-4;
  const memory = options.history ?? 10;
  return noGrad(() =>
    tidy(() => {
      const x1 = withBias(x);
      const [n, d1] = x1.shape;
      const size = d1 * numClasses;
      const decayed = size - numClasses; // the bias row (last C entries) is not decayed
      const targets = tensorIndex(labels).oneHot(numClasses).float();
      let evaluations = 0;
      const evaluate = (theta: Float64Array): { loss: number; grad: Float64Array } => {
        evaluations++;
        let penalty = 0;
        for (let i = 0; i < decayed; i++) penalty += theta[i] * theta[i];
        const [data, gradient] = tidy(() => {
          const logits = x1.mm(fromTypedArray(Float32Array.from(theta), [d1, numClasses]));
          const loss = logits.logsumexp(1).sub(logits.mul(targets).sum(1)).mean();
          const grad = x1.t().mm(nn.functional.softmax(logits, 1).sub(targets)).div(n);
          return [loss.item(), grad.toTypedArray() as Float32Array];
        });
        const grad = Float64Array.from(gradient);
        for (let i = 0; i < decayed; i++) grad[i] += weightDecay * theta[i];
        return { loss: data + 0.5 * weightDecay * penalty, grad };
      };
      let theta: Float64Array = options.init ? options.init.slice() : new Float64Array(size);
      let { loss, grad } = evaluate(theta);
      const pairs: { s: Float64Array; y: Float64Array; rho: number }[] = [];
      let iterations = 0;
      for (; iterations < maxIterations && maxAbs(grad) >= tolerance; iterations++) {
        let direction: Float64Array = twoLoop(grad, pairs);
        let slope = dot(grad, direction);
        if (!(slope < 0)) {
          // Not a descent direction (stale curvature pairs): restart from steepest descent.
          pairs.length = 0;
          direction = twoLoop(grad, pairs);
          slope = dot(grad, direction);
        }
        let t = 1;
        let next = axpy(theta, t, direction);
        let trial = evaluate(next);
        for (let halvings = 0; trial.loss > loss + 1e-4 * t * slope && halvings < 40; halvings++) {
          t /= 2;
          next = axpy(theta, t, direction);
          trial = evaluate(next);
        }
        const s = axpy(next, -1, theta);
        const y = axpy(trial.grad, -1, grad);
        const sy = dot(s, y);
        if (sy > 1e-10) {
          pairs.push({ s, y, rho: 1 / sy });
          if (pairs.length > memory) pairs.shift();
        }
        const improvement = loss - trial.loss;
        ({ loss, grad } = trial);
        theta = next;
        if (improvement >= 0 && improvement < 1e-9 * Math.max(1, Math.abs(loss))) {
          iterations++;
          break;
        }
      }
      return { theta, iterations, evaluations, loss };
    }),
  );
}

/** The L-BFGS two-loop recursion: -H grad from the stored curvature pairs. */
function twoLoop(grad: Float64Array, pairs: { s: Float64Array; y: Float64Array; rho: number }[]): Float64Array {
  let q: Float64Array = grad.slice();
  const alphas: number[] = [];
  for (let i = pairs.length - 1; i >= 0; i--) {
    alphas[i] = pairs[i].rho * dot(pairs[i].s, q);
    q = axpy(q, -alphas[i], pairs[i].y);
  }
  const last = pairs.at(-1);
  // Without curvature pairs yet, a first step of length at most 1.
  const gamma = last ? dot(last.s, last.y) / dot(last.y, last.y) : 1 / Math.max(1, Math.sqrt(dot(grad, grad)));
  let r: Float64Array = q.map((v) => v * gamma);
  for (let i = 0; i < pairs.length; i++) {
    const beta = pairs[i].rho * dot(pairs[i].y, r);
    r = axpy(r, alphas[i] - beta, pairs[i].s);
  }
  return r.map((v) => -v);
}

/** Class indices predicted by a fitted theta. */
export function predictLogistic(theta: Float64Array, x: Tensor): Int32Array {
  const d1 = x.shape[1] + 1;
  return noGrad(() =>
    tidy(() =>
      Int32Array.from(
        withBias(x)
          .mm(fromTypedArray(Float32Array.from(theta), [d1, theta.length / d1]))
          .argmax(1)
          .toArray(),
      ),
    ),
  );
}

/** A stratified split of train: `fraction` of each class (at least one where a class has two or more). */
export function heldOutSplit(
  labels: Int32Array,
  numClasses: number,
  fraction: number,
  seed: number,
): { fit: Int32Array; heldOut: Int32Array } {
  if (!(fraction > 0 && fraction < 1)) throw new RangeError(`held-out fraction must be in (0, 1), got ${fraction}`);
  const random = seededRandom(seed);
  const fit: number[] = [];
  const heldOut: number[] = [];
  for (const rows of indicesByClass(labels, numClasses)) {
    const order = shuffled(rows, random);
    const take = order.length >= 2 ? Math.max(1, Math.round(order.length * fraction)) : 0;
    heldOut.push(...order.slice(0, take));
    fit.push(...order.slice(take));
  }
  return { fit: Int32Array.from(fit).sort(), heldOut: Int32Array.from(heldOut).sort() };
}

export function linearProbe(train: LabeledFeatures, test: LabeledFeatures, options: LinearProbeOptions = {}): EvalResult {
  checkTrainTest(train, test);
  const meter = new ComputeMeter();
  const numClasses = train.classNames.length;
  const fitOptions = { maxIterations: options.maxIterations, tolerance: options.tolerance };
  const [xTrain, xTest] = standardize(train.features, test.features);
  let epochs = 0;
  const candidates: { weightDecay: number; heldOutAccuracy: number }[] = [];
  let weightDecay = options.weightDecay;
  let warm: Float64Array | undefined;
  let chosen: Float64Array | undefined;
  if (weightDecay === undefined) {
    const { fit, heldOut } = heldOutSplit(train.labels, numClasses, options.heldOutFraction ?? 0.1, options.seed ?? 0);
    const fitSet = selectRows({ ...train, features: xTrain }, fit);
    const heldOutSet = selectRows({ ...train, features: xTrain }, heldOut);
    // From strong to weak decay, each fit warm-started from the previous; ties keep the stronger.
    const grid = [...(options.weightDecays ?? DEFAULT_WEIGHT_DECAYS)].sort((a, b) => b - a);
    let best = -1;
    for (const wd of grid) {
      const result = fitLogisticRegression(fitSet.features, fitSet.labels, numClasses, { ...fitOptions, weightDecay: wd, init: warm });
      epochs += (result.evaluations * fit.length) / train.labels.length;
      warm = result.theta;
      const accuracy = classificationReport(predictLogistic(result.theta, heldOutSet.features), heldOutSet.labels, train.classNames).top1;
      candidates.push({ weightDecay: wd, heldOutAccuracy: accuracy });
      if (accuracy > best) [best, weightDecay, chosen] = [accuracy, wd, result.theta];
    }
    fitSet.features.dispose();
    heldOutSet.features.dispose();
  }
  // The refit on all of train starts from the chosen fit on the selection part.
  const final = fitLogisticRegression(xTrain, train.labels, numClasses, { ...fitOptions, weightDecay: weightDecay!, init: chosen });
  epochs += final.evaluations;
  const predicted = predictLogistic(final.theta, xTest);
  const featureDims = xTest.shape[1];
  for (const t of [xTrain, xTest]) t.dispose();
  return probeResult('linear', predicted, train, test, meter.read(epochs), {
    optimizer: 'L-BFGS',
    weightDecay,
    candidates,
    iterations: final.iterations,
    trainLoss: final.loss,
    featureDims,
  });
}
