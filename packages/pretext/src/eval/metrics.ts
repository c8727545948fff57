// What every protocol reports (top-1, per-class accuracy, confusion matrix, compute) and the checks
// on its input that name the problem.
import { fromTypedArray, tidy, type Tensor } from '@pretext/torch';
import type { SampleStore } from '../data/store.js';

/** Features (N x D, or N x C x H x W maps for the conv probe) with a class index per row. */
export interface LabeledFeatures {
  features: Tensor;
  labels: Int32Array;
  classNames: string[];
}

export interface Compute {
  /** User + system CPU time of the process (libtorch threads included). */
  cpuSeconds: number;
  wallSeconds: number;
  /** Passes over the training set (L-BFGS iterations count as full-batch epochs; 0 for kNN). */
  epochs: number;
}

export interface ClassAccuracy {
  className: string;
  /** Percent of this class's test samples classified correctly. */
  accuracy: number;
  count: number;
}

export interface ClassificationReport {
  /** Top-1 accuracy in percent. */
  top1: number;
  perClass: ClassAccuracy[];
  /** confusion[true][predicted] counts. */
  confusion: number[][];
}

export interface EvalResult extends ClassificationReport {
  protocol: string;
  trainSamples: number;
  testSamples: number;
  compute: Compute;
  /** Protocol-specific choices: the selected weight decay, k, labels per class... */
  details: Record<string, unknown>;
}

/** The result of a probe fitted on `train` and scored on `test`. */
export function probeResult(
  protocol: string,
  predicted: ArrayLike<number>,
  train: Labeled,
  test: Labeled,
  compute: Compute,
  details: Record<string, unknown>,
): EvalResult {
  return {
    protocol,
    ...classificationReport(predicted, test.labels, test.classNames),
    trainSamples: train.labels.length,
    testSamples: test.labels.length,
    compute,
    details,
  };
}

/** Measures CPU and wall time from construction. */
export class ComputeMeter {
  readonly #cpu = process.cpuUsage();
  readonly #wall = performance.now();

  read(epochs: number): Compute {
    const cpu = process.cpuUsage(this.#cpu);
    return { cpuSeconds: (cpu.user + cpu.system) / 1e6, wallSeconds: (performance.now() - this.#wall) / 1000, epochs };
  }
}

export function classificationReport(predicted: ArrayLike<number>, labels: ArrayLike<number>, classNames: string[]): ClassificationReport {
  if (predicted.length !== labels.length) throw new Error(`${predicted.length} predictions for ${labels.length} labels`);
  const c = classNames.length;
  const confusion = Array.from({ length: c }, () => new Array<number>(c).fill(0));
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    confusion[labels[i]][predicted[i]]++;
    if (labels[i] === predicted[i]) correct++;
  }
  const perClass = classNames.map((className, k) => {
    const count = confusion[k].reduce((a, b) => a + b, 0);
    return { className, accuracy: count ? (100 * confusion[k][k]) / count : 0, count };
  });
  return { top1: labels.length ? (100 * correct) / labels.length : 0, perClass, confusion };
}

/** Labels and their class names, without features (stores, subsets). */
export type Labeled = Pick<LabeledFeatures, 'labels' | 'classNames'>;

/** Checks that every label is a known class. */
export function checkLabels(set: Labeled, what: string): void {
  const n = set.labels.length;
  if (n === 0) throw new Error(`${what}: no samples`);
  const c = set.classNames.length;
  const unlabeled = set.labels.filter((l) => l < 0).length;
  if (unlabeled) throw new Error(`${what}: ${unlabeled} of ${n} samples have no label (-1); evaluation needs labeled data`);
  const bad = set.labels.find((l) => l >= c);
  if (bad !== undefined) throw new Error(`${what}: label ${bad} is outside the ${c} classes (${set.classNames.join(', ')})`);
}

/** Checks one feature set: as many rows as labels, every label a known class. */
export function checkFeatures(set: LabeledFeatures, what: string): void {
  const rows = set.features.shape[0];
  if (rows !== set.labels.length) {
    throw new Error(`${what}: features and labels have different lengths (${rows} feature rows, ${set.labels.length} labels)`);
  }
  checkLabels(set, what);
}

/** Checks that train and test have the same class names and the same classes present. */
export function checkLabelSets(train: Labeled, test: Labeled): void {
  checkLabels(train, 'train');
  checkLabels(test, 'test');
  if (train.classNames.join('\n') !== test.classNames.join('\n')) {
    throw new Error(
      `the label sets of train and test differ: train has classes [${train.classNames.join(', ')}], test [${test.classNames.join(', ')}]`,
    );
  }
  const [inTrain, inTest] = [new Set(train.labels), new Set(test.labels)];
  const name = (k: number) => `'${train.classNames[k]}'`;
  const onlyTest = [...inTest].filter((k) => !inTrain.has(k)).sort((a, b) => a - b);
  const onlyTrain = [...inTrain].filter((k) => !inTest.has(k)).sort((a, b) => a - b);
  if (onlyTest.length || onlyTrain.length) {
    const parts = [
      onlyTest.length ? `test has class(es) ${onlyTest.map(name).join(', ')} that train lacks` : '',
      onlyTrain.length ? `train has class(es) ${onlyTrain.map(name).join(', ')} that test lacks` : '',
    ].filter(Boolean);
    throw new Error(`the label sets of train and test do not match: ${parts.join('; ')}`);
  }
}

/** Checks a train/test pair of feature sets: each valid, the same shape per sample, matching label sets. */
export function checkTrainTest(train: LabeledFeatures, test: LabeledFeatures): void {
  checkFeatures(train, 'train');
  checkFeatures(test, 'test');
  const [dTrain, dTest] = [train.features.shape.slice(1), test.features.shape.slice(1)];
  if (dTrain.join('x') !== dTest.join('x')) {
    throw new Error(
      `train and test features have different shapes per sample ([${dTrain}] vs [${dTest}]); extract both from the same layer and pooling`,
    );
  }
  checkLabelSets(train, test);
}

/** Rows of a labeled set, in the given order. */
export function selectRows(set: LabeledFeatures, indices: ArrayLike<number>): LabeledFeatures {
  const features = tidy(() => set.features.indexSelect(0, tensorIndex(indices)));
  return { features, labels: Int32Array.from(indices, (i) => set.labels[i]), classNames: set.classNames };
}

/** An int64 index tensor from sample indices (built as int32 and converted by libtorch, no per-element BigInt). */
export function tensorIndex(indices: ArrayLike<number>): Tensor {
  const int32 = fromTypedArray(indices instanceof Int32Array ? indices : Int32Array.from(indices));
  try {
    return int32.long();
  } finally {
    int32.dispose();
  }
}

/** Row indices 0..n-1: every sample of a store or set. */
export const allRows = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

/** Labels of some rows of a store. */
export function labelsOf(store: SampleStore, rows: Int32Array): Labeled {
  return { labels: Int32Array.from(rows, (i) => store.labels[i]), classNames: store.classNames };
}
