// The protocols by name, and the entry points the CLI wires: evaluate features files or a trained
// backbone's block with any protocol (optionally with K labels per class), and every block at once.
import type { Tensor } from '@pretext/torch';
import { resolveDataset } from '../data/datasets.js';
import type { SampleStore } from '../data/store.js';
import type { Backbone } from '../models/backbone.js';
import { loadPretrained, type Pretrained } from '../train/pretrained.js';
import { subsetIndices } from '../train/trainer.js';
import { convProbe, type ConvProbeOptions } from './conv.js';
import { checkBlock, extractFeatures, extractLayerFeatures, loadFeatures, type Normalization, type Pool } from './features.js';
import { fineTune, type SupervisedOptions } from './finetune.js';
import { knnProbe, type KnnOptions } from './knn.js';
import { linearProbe, type LinearProbeOptions } from './linear.js';
import { sampleLabelsPerClass } from './lowshot.js';
import { allRows, checkLabelSets, labelsOf, selectRows, type EvalResult, type Labeled, type LabeledFeatures } from './metrics.js';
import { mlpProbe, type MlpProbeOptions } from './mlp.js';

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
  /** The block to read (default the backbone's last). */
  layer?: string;
  pool?: Pool;
  batchSize?: number;
  /** Seeded subsets of the train and test splits (data specs only). */
  trainLimit?: number;
  testLimit?: number;
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
    if (options.protocol === 'finetune')
      throw new Error("protocol 'finetune' trains the network: give --checkpoint and data specs, not features files");
    const [train, test] = [loadFeatures(options.train), loadFeatures(options.test)];
    try {
      return evaluateFeatures(options.protocol, train, test, options);
    } finally {
      train.features.dispose();
      test.features.dispose();
    }
  }
  if (!options.checkpoint) throw new Error('--train and --test are data specs: give --checkpoint (a run folder) to embed them with');
  const { input, pretrained } = await backboneInput(options);
  return evaluateBackbone(options.protocol, { ...input, block: options.layer ?? pretrained.backbone.blockNames.at(-1)! }, options);
}

/** A trained run's backbone over two data specs, as the protocols take it. */
async function backboneInput(options: EvalOptions): Promise<{ input: Omit<BackboneEvalInput, 'block'>; pretrained: Pretrained }> {
  const pretrained = loadPretrained(options.checkpoint!);
  if (options.layer) checkBlock(pretrained.backbone, options.layer);
  const size = pretrained.config.imageSize;
  const train = await resolveDataset(options.train, { split: 'train', size, log: options.log });
  const test = await resolveDataset(options.test, { split: 'test', size, log: options.log });
  const subset = (store: SampleStore, limit?: number) => (limit ? subsetIndices(store.n, limit, options.seed ?? 0) : undefined);
  const input = {
    backbone: pretrained.backbone,
    train,
    test,
    pool: options.pool,
    normalization: pretrained.normalization,
    imageSize: size,
    batchSize: options.batchSize,
    trainIndices: subset(train, options.trainLimit),
    testIndices: subset(test, options.testLimit),
  };
  return { input, pretrained };
}

/** `pretext eval --layer all`: the protocol on every block of a trained run, naming the best. */
export async function evaluateAllLayers(
  options: EvalOptions & { protocol: FeatureProtocol },
): Promise<{ layers: LayerResult[]; best: string }> {
  if (!options.checkpoint) throw new Error('--layer all needs --checkpoint and data specs for --train and --test');
  const { input } = await backboneInput(options);
  return evaluateLayers(input, options);
}
