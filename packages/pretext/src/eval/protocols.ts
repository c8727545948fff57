// The protocols by name, and the entry points the CLI wires: evaluate features files or a trained
// backbone's block with any protocol (optionally with K labels per class), and every block at once.
import type { Tensor } from '@pretext/torch';
import { resolveDataset } from '../data/datasets.js';
import { datasetStats } from '../data/loader.js';
import type { SampleStore } from '../data/store.js';
import type { Backbone } from '../models/backbone.js';
import { subsetIndices } from '../util/random.js';
import { convProbe, type ConvProbeOptions } from './conv.js';
import {
  checkBlock,
  checkFeaturePair,
  extractFeatures,
  extractLayerFeatures,
  loadFeatures,
  type Normalization,
  type Pool,
} from './features.js';
import { fineTune, randomBackbone, type SupervisedOptions } from './finetune.js';
import { knnProbe, type KnnOptions } from './knn.js';
import { linearProbe, type LinearProbeOptions } from './linear.js';
import { sampleLabelsPerClass } from './lowshot.js';
import { allRows, checkLabelSets, labelsOf, selectRows, type EvalResult, type Labeled, type LabeledFeatures } from './metrics.js';
import { mlpProbe, type MlpProbeOptions } from './mlp.js';
import { loadPretrainedModule, type PretrainedModule } from './pretrained-module.js';

export type FeatureProtocol = 'linear' | 'knn' | 'mlp';
export type Protocol = FeatureProtocol | 'conv' | 'finetune';
export const PROTOCOLS: readonly Protocol[] = ['linear', 'knn', 'mlp', 'conv', 'finetune'];
/** The protocols that read pooled feature vectors (the ones `--layer all` runs on every block). */
export const FEATURE_PROTOCOLS: readonly FeatureProtocol[] = ['linear', 'knn', 'mlp'];

export interface ProtocolOptions {
  linear?: LinearProbeOptions;
  knn?: KnnOptions;
  mlp?: MlpProbeOptions;
  conv?: ConvProbeOptions;
  finetune?: SupervisedOptions;
  /** Train with only K labeled samples per class (drawn with `seed`). */
  labelsPerClass?: number;
  /** Seeds the low-shot draw and every protocol's randomness (default 0). */
  seed?: number;
}

export function checkProtocol(protocol: string): asserts protocol is Protocol {
  if (!PROTOCOLS.includes(protocol as Protocol))
    throw new Error(`unknown protocol '${protocol}'; valid protocols: ${PROTOCOLS.join(', ')}`);
}

/** Train rows for K labels per class (all rows without K). */
function lowShotRows(
  labels: Int32Array,
  classNames: string[],
  options: Pick<ProtocolOptions, 'labelsPerClass' | 'seed'>,
): Int32Array | undefined {
  if (options.labelsPerClass === undefined) return undefined;
  return sampleLabelsPerClass(labels, options.labelsPerClass, { seed: options.seed ?? 0, classNames });
}

/** Records the low-shot budget (labels per class and the seed of the draw) in a result's details. */
export function withLowShot(result: EvalResult, options: Pick<ProtocolOptions, 'labelsPerClass' | 'seed'>): EvalResult {
  return options.labelsPerClass === undefined
    ? result
    : { ...result, details: { ...result.details, labelsPerClass: options.labelsPerClass, seed: options.seed ?? 0 } };
}

/** Runs a protocol on features in memory: 'linear', 'knn', 'mlp', or 'conv' on N x C x H x W maps. */
export function evaluateFeatures(
  protocol: Exclude<Protocol, 'finetune'>,
  train: LabeledFeatures,
  test: LabeledFeatures,
  options: ProtocolOptions = {},
): EvalResult {
  checkProtocol(protocol);
  const rows = lowShotRows(train.labels, train.classNames, options);
  const trainSet = rows ? selectRows(train, rows) : train;
  const seed = options.seed ?? 0;
  try {
    switch (protocol) {
      case 'linear':
        return withLowShot(linearProbe(trainSet, test, { seed, ...options.linear }), options);
      case 'knn':
        return withLowShot(knnProbe(trainSet, test, options.knn), options);
      case 'mlp':
        return withLowShot(mlpProbe(trainSet, test, { seed, ...options.mlp }), options);
      case 'conv':
        return withLowShot(convProbe(trainSet, test, { seed, ...options.conv }), options);
      default:
        throw new Error(`protocol '${String(protocol)}' needs images, not features: use evaluateBackbone`);
    }
  } finally {
    if (rows) trainSet.features.dispose();
  }
}

/** A backbone and the data to evaluate one of its blocks on. */
export interface BackboneEvalInput {
  backbone: Backbone;
  train: SampleStore;
  test: SampleStore;
  block: string;
  /** Pooling for the feature protocols (default 'gap'); the conv probe always takes the maps. */
  pool?: Pool;
  normalization: Normalization;
  imageSize?: number;
  /** Subsets of the stores (default all samples). */
  trainIndices?: Int32Array;
  testIndices?: Int32Array;
  batchSize?: number;
  /** What the backbone sees of the loader's images (the run's task encoderInput, or a probe module's input), default the images. */
  encoderInput?: (images: Tensor) => Tensor;
}

/**
 * The store rows to train on: K labels per class (options.labelsPerClass) drawn with the seed among
 * `rows`, or all of `rows` without K. The draw every protocol makes, for callers that embed only it.
 */
export function lowShotStoreRows(
  store: SampleStore,
  rows: Int32Array,
  options: Pick<ProtocolOptions, 'labelsPerClass' | 'seed'>,
): Int32Array {
  const { labels, classNames } = labelsOf(store, rows);
  const picked = lowShotRows(labels, classNames, options);
  return picked ? Int32Array.from(picked, (i) => rows[i]) : rows;
}

/** Labeled features of `rows` of a store at one block. */
async function storeFeatures(input: BackboneEvalInput, store: SampleStore, rows: Int32Array, pool: Pool): Promise<LabeledFeatures> {
  const features = await extractFeatures(input.backbone, store, {
    block: input.block,
    pool,
    normalization: input.normalization,
    imageSize: input.imageSize,
    indices: rows,
    batchSize: input.batchSize,
    encoderInput: input.encoderInput,
  });
  return { ...labelsOf(store, rows), features };
}

/**
 * Evaluates a backbone's block with any protocol. Low-shot draws K per class among the train rows
 * and embeds only those. 'finetune' trains the backbone in place: pass a copy you can spare.
 */
export async function evaluateBackbone(protocol: Protocol, input: BackboneEvalInput, options: ProtocolOptions = {}): Promise<EvalResult> {
  checkProtocol(protocol);
  checkBlock(input.backbone, input.block);
  const trainRows = input.trainIndices ?? allRows(input.train.n);
  const testRows = input.testIndices ?? allRows(input.test.n);
  checkLabelSets(labelsOf(input.train, trainRows), labelsOf(input.test, testRows));
  const rows = lowShotStoreRows(input.train, trainRows, options);
  if (protocol === 'finetune') {
    const result = await fineTune(input.backbone, input.train, input.test, {
      seed: options.seed,
      ...options.finetune,
      block: input.block,
      normalization: input.normalization,
      imageSize: input.imageSize,
      indices: rows,
      testIndices: testRows,
      encoderInput: input.encoderInput,
    });
    return withLowShot(result, options);
  }
  const pool = protocol === 'conv' ? 'none' : (input.pool ?? 'gap');
  const train = await storeFeatures(input, input.train, rows, pool);
  const test = await storeFeatures(input, input.test, testRows, pool);
  try {
    // The rows are already the K-per-class draw: train on all of them, and record the budget.
    return withLowShot(evaluateFeatures(protocol, train, test, { ...options, labelsPerClass: undefined }), options);
  } finally {
    train.features.dispose();
    test.features.dispose();
  }
}

export interface LayerResult {
  block: string;
  result: EvalResult;
}

/**
 * One protocol (default the linear probe) on each block's features, given per-block train and test
 * features of the same samples; names the block that scores best. `fitted` holds results the caller
 * already has for some blocks with this same protocol, data and options: those are reused, not refitted.
 */
export function evaluateLayerFeatures(
  train: Map<string, Tensor>,
  test: Map<string, Tensor>,
  trainLabels: Labeled,
  testLabels: Labeled,
  options: ProtocolOptions & { protocol?: FeatureProtocol } = {},
  fitted?: ReadonlyMap<string, EvalResult>,
): { layers: LayerResult[]; best: string } {
  const layers = [...train].map(([block, features]) => {
    const testFeatures = test.get(block);
    if (!testFeatures) throw new Error(`layer '${block}' has train features but no test features`);
    const result =
      fitted?.get(block) ??
      evaluateFeatures(options.protocol ?? 'linear', { ...trainLabels, features }, { ...testLabels, features: testFeatures }, options);
    return { block, result };
  });
  const best = layers.reduce((a, b) => (b.result.top1 > a.result.top1 ? b : a)).block;
  return { layers, best };
}

/** Linear probe (or another feature protocol) on every block of the backbone from one pass over the data. */
export async function evaluateLayers(
  input: Omit<BackboneEvalInput, 'block'> & { blocks?: string[] },
  options: ProtocolOptions & { protocol?: FeatureProtocol } = {},
): Promise<{ layers: LayerResult[]; best: string }> {
  const blocks = input.blocks ?? [...input.backbone.blockNames];
  const trainRows = input.trainIndices ?? allRows(input.train.n);
  const testRows = input.testIndices ?? allRows(input.test.n);
  const extract = (store: SampleStore, rows: Int32Array) =>
    extractLayerFeatures(input.backbone, store, {
      blocks,
      pool: input.pool,
      normalization: input.normalization,
      imageSize: input.imageSize,
      indices: rows,
      batchSize: input.batchSize,
      encoderInput: input.encoderInput,
    });
  const train = await extract(input.train, trainRows);
  const test = await extract(input.test, testRows);
  try {
    return evaluateLayerFeatures(train, test, labelsOf(input.train, trainRows), labelsOf(input.test, testRows), options);
  } finally {
    for (const t of [...train.values(), ...test.values()]) t.dispose();
  }
}

export interface EvalOptions extends ProtocolOptions {
  protocol: Protocol;
  /** Features files (.safetensors from embed), or data specs with `checkpoint`. */
  train: string;
  test: string;
  /** A run folder or checkpoint sidecar, when train/test are data specs. */
  checkpoint?: string;
  /** The run's module to evaluate: 'backbone' (default) or one of its task's probes (e.g. 'discriminator'). */
  module?: string;
  /** The block to read (default the module's last). */
  layer?: string;
  pool?: Pool;
  batchSize?: number;
  /** Seeded subsets of the train and test splits (data specs only). */
  trainLimit?: number;
  testLimit?: number;
  /** Evaluate features files made by different checkpoints, blocks, pooling or preprocessing (a warning, not an error). */
  allowMismatch?: boolean;
  /**
   * 'random': the backbone at random init (seeded by `seed`), the baseline for the same protocol:
   * `backbone` names it, or the checkpoint's module (its architecture, input and preprocessing) is
   * used. Default: the checkpoint's trained weights.
   */
  init?: 'random' | 'checkpoint';
  /** The backbone to evaluate at random init without a checkpoint. */
  backbone?: string;
  /** Input side without a checkpoint (default the data's own). */
  imageSize?: number;
  log?: (line: string) => void;
}

const isFeaturesFile = (spec: string) => spec.endsWith('.safetensors');

/** `pretext eval`: a protocol on features files, or on a trained run's block over two data specs. */
export async function evaluate(options: EvalOptions): Promise<EvalResult> {
  checkProtocol(options.protocol);
  if (isFeaturesFile(options.train) !== isFeaturesFile(options.test)) {
    throw new Error('--train and --test must both be features files (.safetensors) or both data specs');
  }
  if (isFeaturesFile(options.train)) {
    if (options.module !== undefined)
      throw new Error('--module reads a run over data specs; features files hold the features they were embedded with');
    if (options.protocol === 'finetune')
      throw new Error("protocol 'finetune' trains the network: give --checkpoint and data specs, not features files");
    const [train, test] = [loadFeatures(options.train), loadFeatures(options.test)];
    try {
      checkFeaturePair({ path: options.train, file: train }, { path: options.test, file: test }, options);
      return evaluateFeatures(options.protocol, train, test, options);
    } finally {
      train.features.dispose();
      test.features.dispose();
    }
  }
  const { input, backbone } = await backboneInput(options);
  return evaluateBackbone(options.protocol, { ...input, block: options.layer ?? backbone.blockNames.at(-1)! }, options);
}

/**
 * The backbone to evaluate over two data specs, as the protocols take it: a trained run's module
 * (its backbone by default), or at random init (`init: 'random'`) that module with the run's input
 * and preprocessing, or a named backbone on the data's own. Refuses a test split whose samples are
 * also training samples.
 */
async function backboneInput(options: EvalOptions): Promise<{ input: Omit<BackboneEvalInput, 'block'>; backbone: Backbone }> {
  const random = options.init === 'random' || (options.init === undefined && !options.checkpoint && options.backbone !== undefined);
  if (!options.checkpoint && !random) {
    throw new Error(
      '--train and --test are data specs: give --checkpoint (a run folder) to embed them with, or --backbone NAME --init random for the random-init baseline',
    );
  }
  if (options.init === 'checkpoint' && !options.checkpoint) throw new Error('--init checkpoint needs --checkpoint');
  if (!options.checkpoint && options.module !== undefined) throw new Error('--module names a module of the run given by --checkpoint');
  if (!options.checkpoint && options.backbone === undefined) throw new Error('--init random needs --checkpoint or --backbone NAME');
  const seed = options.seed ?? 0;
  const pretrained: PretrainedModule | undefined = options.checkpoint
    ? loadPretrainedModule(options.checkpoint, { module: options.module, randomSeed: random ? seed : undefined })
    : undefined;
  if (pretrained && options.backbone && options.backbone !== pretrained.config.backbone) {
    throw new Error(`--backbone ${options.backbone} differs from the checkpoint's ${pretrained.config.backbone}; leave out one of them`);
  }
  const size = pretrained?.imageSize ?? options.imageSize;
  const train = await resolveDataset(options.train, { split: 'train', size, log: options.log });
  const test = await resolveDataset(options.test, { split: 'test', size, log: options.log });
  const subset = (store: SampleStore, limit?: number) => (limit ? subsetIndices(store.n, limit, options.seed ?? 0) : undefined);
  const trainIndices = subset(train, options.trainLimit);
  const testIndices = subset(test, options.testLimit);
  checkDisjoint(train, trainIndices, test, testIndices);
  const backbone = pretrained?.backbone ?? randomBackbone(options.backbone!, train.channels, seed);
  if (options.layer) checkBlock(backbone, options.layer);
  options.log?.(`evaluating ${describeEvaluated(pretrained, options.backbone, seed)}`);
  const input = {
    backbone,
    train,
    test,
    pool: options.pool,
    normalization: pretrained?.normalization ?? datasetStats(train),
    imageSize: size,
    batchSize: options.batchSize,
    trainIndices,
    testIndices,
    // The module's input mapping (colorization's L, a discriminator's crop) also feeds it at random init.
    encoderInput: pretrained?.encoderInput,
  };
  return { input, backbone };
}

/** What evaluate() reads, for its log: the run (and module) or, at random init, the architecture and seed. */
function describeEvaluated(pretrained: PretrainedModule | undefined, backbone: string | undefined, seed: number): string {
  const module = pretrained && pretrained.module !== 'backbone' ? pretrained.module : undefined;
  if (pretrained?.init === 'checkpoint') return `${pretrained.checkpoint}${module ? `, module ${module}` : ''}`;
  const name = module ? `the ${pretrained!.config.task} ${module}` : (backbone ?? pretrained!.config.backbone);
  return `${name} at random init (seed ${seed})`;
}

/** Refuses test rows that are also training rows (the same source read for both, e.g. a folder without split subfolders). */
function checkDisjoint(train: SampleStore, trainRows: Int32Array | undefined, test: SampleStore, testRows: Int32Array | undefined): void {
  if (!train.origin || train.origin !== test.origin) return;
  const trainPaths = new Set(Array.from(trainRows ?? allRows(train.n), (i) => train.paths[i]));
  const shared = Array.from(testRows ?? allRows(test.n), (i) => test.paths[i]).filter((path) => trainPaths.has(path)).length;
  if (shared === 0) return;
  throw new Error(
    `--train and --test both read ${train.origin}, and ${shared} test samples are also training samples: the score would count memorized samples. ` +
      'Give the evaluation split separately (a folder splits into train/ and test/ or val/ subfolders)',
  );
}

/** `pretext eval --layer all`: the protocol on every block of a trained run, naming the best. */
export async function evaluateAllLayers(
  options: EvalOptions & { protocol: FeatureProtocol },
): Promise<{ layers: LayerResult[]; best: string }> {
  const { input } = await backboneInput(options);
  return evaluateLayers(input, options);
}
