// Whole-network training with labels: fine-tuning a pretrained backbone plus a linear head, and the
// supervised baseline (the same loop from a seeded random init, on all labels or K per class).
import { BudgetPlan, formatBudget, type BudgetSetting } from '../util/budget.js';
import { withPrecision, type Precision } from '../util/precision.js';
import { manualSeed, nn, noGrad, optim, tidy, type Tensor } from '@pretext/torch';
import type { AugmentSpec } from '../data/augment.js';
import { DataLoader, disposeBatch } from '../data/loader.js';
import type { SampleStore } from '../data/store.js';
import type { Backbone } from '../models/backbone.js';
import { createBackbone } from '../models/index.js';
import { PooledClassifier } from '../models/heads.js';
import { checkBlock, evalLoader, loaderChannels, type Normalization } from './features.js';
import { makeOptimizer } from './fit.js';
import {
  allRows,
  checkLabelSets,
  checkLabels,
  classificationReport,
  ComputeMeter,
  labelsOf,
  type Compute,
  type EvalResult,
} from './metrics.js';

/** A backbone read at `block`, global average pooling and a linear layer; `encoderInput` maps loader images to what the backbone takes. */
export class BackboneClassifier extends nn.Module {
  backbone: Backbone;
  head: PooledClassifier;

  constructor(
    backbone: Backbone,
    readonly block: string,
    classes: number,
    readonly encoderInput?: (images: Tensor) => Tensor,
  ) {
    super();
    checkBlock(backbone, block);
    this.backbone = backbone;
    this.head = new PooledClassifier(backbone.channelsAt(block), classes);
  }

  forward(images: Tensor): Tensor {
    const input = this.encoderInput ? this.encoderInput(images) : images;
    return this.head.forward(this.backbone.forwardTo(input, this.block));
  }
}

/** Random crops of 64-100% of the area and horizontal flips: the default training augmentation. */
export const DEFAULT_SUPERVISED_AUGMENT: AugmentSpec = {
  randomResizedCrop: { scale: [0.64, 1], ratio: [3 / 4, 4 / 3] },
  horizontalFlip: 0.5,
};

export interface SupervisedOptions {
  /** Block the head reads (default the backbone's last). */
  block?: string;
  /** Default 15, raised so that small label sets still get `minSteps` steps. */
  epochs?: number;
  /**
   * Train for this much compute instead of `epochs`, as a pretraining run does (util/budget.ts):
   * the cosine schedule is laid out over the steps the budget buys, measured after 10 steps.
   */
  budget?: BudgetSetting & { calibrationSteps?: number };
  /** 'bf16': forward passes under CPU autocast to bfloat16, as pretraining with --precision bf16 (default 'fp32'). */
  precision?: Precision;
  minSteps?: number;
  batchSize?: number;
  /** SGD with Nesterov momentum 0.9 and a cosine decay (default lr 0.1, weight decay 5e-4). */
  lr?: number;
  weightDecay?: number;
  /** Default DEFAULT_SUPERVISED_AUGMENT; null for none. */
  augment?: AugmentSpec | null;
  /** Default 'dataset' (the training store's statistics). */
  normalization?: Normalization;
  imageSize?: number;
  /** The labeled training samples (default all). */
  indices?: Int32Array;
  /** What the backbone sees of the loader's images, as in pretraining (colorization's L); the loader then reads the data's own channels. */
  encoderInput?: (images: Tensor) => Tensor;
  seed?: number;
  log?: (line: string) => void;
}

export interface SupervisedResult {
  classifier: BackboneClassifier;
  /** The normalization used, to evaluate with. */
  normalization: { mean: number[]; std: number[] };
  compute: Compute;
  losses: number[];
  samples: number;
}

/** Trains backbone and head end to end with cross entropy on the store's labels; the backbone is updated in place. */
export async function trainSupervised(backbone: Backbone, store: SampleStore, options: SupervisedOptions = {}): Promise<SupervisedResult> {
  const block = options.block ?? backbone.blockNames[backbone.blockNames.length - 1];
  const indices = options.indices ?? allRows(store.n);
  checkLabels(labelsOf(store, indices), 'supervised training set');
  const meter = new ComputeMeter();
  const seed = options.seed ?? 0;
  manualSeed(seed);
  const classifier = new BackboneClassifier(backbone, block, store.classNames.length, options.encoderInput);
  const batchSize = Math.min(options.batchSize ?? 128, indices.length);
  const loader = new DataLoader(store, {
    batchSize,
    shuffle: true,
    dropLast: true,
    seed,
    augment: options.augment === null ? undefined : (options.augment ?? DEFAULT_SUPERVISED_AUGMENT),
    normalize: options.normalization ?? 'dataset',
    indices,
    outputSize: options.imageSize,
    channels: loaderChannels(backbone, store, options.encoderInput),
  });
  const normalization = options.normalization && options.normalization !== 'dataset' ? options.normalization : loader.stats();
  let epochs = options.epochs ?? Math.max(15, Math.ceil((options.minSteps ?? 300) / loader.batchesPerEpoch));
  const opt = makeOptimizer('sgd', classifier.parameters(), options.lr ?? 0.1, options.weightDecay ?? 5e-4);
  const cosine = (totalSteps: number) => new optim.CosineWithWarmup(opt, { warmupSteps: 0, totalSteps });
  let schedule = cosine(epochs * loader.batchesPerEpoch);
  const budget = options.budget && new BudgetPlan({ calibrationSteps: 10, ...options.budget });
  const losses: number[] = [];
  let step = 0;
  classifier.train();
  try {
    for (let epoch = 0; epoch < epochs && !budget?.finished(step); epoch++) {
      let [total, steps] = [0, 0];
      for await (const batch of loader.epoch(epoch)) {
        total += tidy(() => {
          opt.zeroGrad();
          const forward = () => nn.functional.crossEntropy(classifier.forward(batch.images), batch.labels);
          const loss = withPrecision(options.precision ?? 'fp32', forward);
          loss.backward();
          opt.step();
          schedule.step();
          return loss.item();
        });
        disposeBatch(batch);
        [step, steps] = [step + 1, steps + 1];
        const planned = budget?.afterStep(step);
        if (planned !== undefined) {
          opt.setLr(schedule.baseLrs);
          schedule = cosine(Math.max(planned, step + 1));
          schedule.loadStateDict({ lastStep: step });
          epochs = Math.ceil(planned / loader.batchesPerEpoch);
          options.log?.(`  supervised: budget ${formatBudget(options.budget!)} buys ${planned} steps (${epochs} epochs)`);
        }
        if (budget?.finished(step)) break;
      }
      losses.push(total / steps);
      options.log?.(`  supervised epoch ${epoch + 1}/${epochs}  loss ${losses.at(-1)!.toFixed(4)}`);
    }
  } finally {
    await loader.close();
  }
  classifier.eval();
  return { classifier, normalization, compute: meter.read(losses.length), losses, samples: indices.length };
}

/** Predicted classes of a trained classifier over a store (eval mode, no grad). */
export async function predictStore(
  classifier: BackboneClassifier,
  store: SampleStore,
  options: { normalization: Normalization; imageSize?: number; indices?: Int32Array; batchSize?: number },
): Promise<Int32Array> {
  const loader = evalLoader(classifier.backbone, store, { ...options, encoderInput: classifier.encoderInput });
  const out = new Int32Array(loader.numSamples);
  const wasTraining = classifier.training;
  classifier.eval();
  let row = 0;
  try {
    for await (const batch of loader.epoch(0)) {
      const predicted = noGrad(() => tidy(() => classifier.forward(batch.images).argmax(1).toArray()));
      out.set(predicted, row);
      row += predicted.length;
      disposeBatch(batch);
    }
  } finally {
    await loader.close();
    classifier.train(wasTraining);
  }
  return out;
}

export interface FineTuneOptions extends SupervisedOptions {
  testIndices?: Int32Array;
}

/** Evaluates a supervised training run on the test store (or its testIndices) as a protocol result. */
export async function reportOnTest(
  protocol: string,
  run: SupervisedResult,
  test: SampleStore,
  options: FineTuneOptions,
): Promise<EvalResult> {
  const testIndices = options.testIndices ?? allRows(test.n);
  const { labels } = labelsOf(test, testIndices);
  const meter = new ComputeMeter();
  const predicted = await predictStore(run.classifier, test, {
    normalization: run.normalization,
    imageSize: options.imageSize,
    indices: testIndices,
  });
  const evalCompute = meter.read(0);
  return {
    protocol,
    ...classificationReport(predicted, labels, test.classNames),
    trainSamples: run.samples,
    testSamples: labels.length,
    compute: {
      ...run.compute,
      cpuSeconds: run.compute.cpuSeconds + evalCompute.cpuSeconds,
      wallSeconds: run.compute.wallSeconds + evalCompute.wallSeconds,
    },
    details: {
      block: run.classifier.block,
      finalLoss: run.losses.at(-1),
      lr: options.lr ?? 0.1,
      weightDecay: options.weightDecay ?? 5e-4,
      augment: options.augment ?? DEFAULT_SUPERVISED_AUGMENT,
    },
  };
}

function checkStores(train: SampleStore, test: SampleStore, options: FineTuneOptions): void {
  const pick = (store: SampleStore, indices?: Int32Array) =>
    indices ? labelsOf(store, indices) : { labels: store.labels, classNames: store.classNames };
  checkLabelSets(pick(train, options.indices), pick(test, options.testIndices));
}

/** Fine-tunes the whole network (updating `backbone` in place) with a linear head and augmentation; reports on test. */
export async function fineTune(
  backbone: Backbone,
  train: SampleStore,
  test: SampleStore,
  options: FineTuneOptions = {},
): Promise<EvalResult> {
  checkStores(train, test, options);
  return reportOnTest('finetune', await trainSupervised(backbone, train, options), test, options);
}

/** A backbone of the named architecture with a seeded random init. */
export function randomBackbone(name: string, inChannels: number, seed: number): Backbone {
  manualSeed(seed);
  return createBackbone(name, inChannels);
}
