// Frozen features: a backbone's block outputs over a store, pooled, and the safetensors file that
// hands them to the protocols and to outside tools (features N x D float32, labels int64 N, and
// JSON metadata: class names, sample paths, how they were made).
import { realpathSync } from 'node:fs';
import { empty, fromTypedArray, nn, noGrad, safetensors, tidy, type Tensor } from '@pretext/torch';
import { resolveDataset, type Split } from '../data/datasets.js';
import { DataLoader, disposeBatch } from '../data/loader.js';
import type { SampleStore } from '../data/store.js';
import type { Backbone } from '../models/backbone.js';
import { subsetIndices } from '../util/random.js';
import { allRows, labelsOf, type LabeledFeatures } from './metrics.js';
import { writeFeaturePictures } from './pictures.js';
import { loadPretrainedModule } from './pretrained-module.js';

/**
 * How a C x H x W block output becomes a vector: global average ('gap', C), 2 x 2 average grid
 * ('grid2', 4C), every value ('flatten', CHW), or kept as maps ('none', for the conv probe).
 */
export type Pool = 'gap' | 'grid2' | 'flatten' | 'none';
export const POOLS: readonly Pool[] = ['gap', 'grid2', 'flatten', 'none'];

export type Normalization = { mean: number[]; std: number[] } | 'dataset';

export interface ExtractOptions {
  block: string;
  /** Default 'gap'. */
  pool?: Pool;
  /** Default 256. */
  batchSize?: number;
  /** The per-channel normalization the backbone was trained with; 'dataset' uses the store's own statistics. */
  normalization: Normalization;
  /** Resize inputs to this side (default the store's). */
  imageSize?: number;
  /** Only these samples, in this order. */
  indices?: Int32Array;
  /** What the backbone sees of the loader's images (a task's encoderInput, e.g. colorization's L); the loader then reads the data's own channels. */
  encoderInput?: (images: Tensor) => Tensor;
}

export interface LayerExtractOptions extends Omit<ExtractOptions, 'block'> {
  blocks: readonly string[];
}

export function poolFeatures(maps: Tensor, pool: Pool): Tensor {
  switch (pool) {
    case 'gap':
      return maps.mean([2, 3]);
    case 'grid2':
      return nn.functional.adaptiveAvgPool2d(maps, 2).flatten(1);
    case 'flatten':
      return maps.flatten(1);
    case 'none':
      return maps;
    default:
      throw new RangeError(`pool must be one of ${POOLS.join(', ')}, got '${String(pool)}'`);
  }
}

/** Channels of the backbone's input (its first convolution's). */
export const inputChannels = (backbone: Backbone): number => backbone.inChannels;

/** Checks a layer name, naming the valid ones. */
export function checkBlock(backbone: Backbone, block: string): void {
  if (!backbone.blockNames.includes(block)) {
    throw new Error(`layer '${block}' does not exist in ${backbone.constructor.name}; its blocks are ${backbone.blockNames.join(', ')}`);
  }
}

/**
 * The channels a loader reads `store` with to feed `backbone`: the backbone's own, or the data's
 * when an encoderInput maps the loader's images (colorization's L from RGB).
 */
export function loaderChannels(backbone: Backbone, store: SampleStore, encoderInput: unknown): 1 | 3 {
  const channels = encoderInput ? store.channels : inputChannels(backbone);
  if (channels !== 1 && channels !== 3) throw new Error(`the backbone takes ${channels}-channel input; only 1 or 3 are supported`);
  if (channels < store.channels)
    throw new Error(`the backbone takes ${channels}-channel images but the data has ${store.channels} channels`);
  return channels;
}

/** A loader over `store` that feeds `backbone` in order, with its channels and normalization. */
export function evalLoader(
  backbone: Backbone,
  store: SampleStore,
  options: { batchSize?: number; normalization: Normalization; imageSize?: number; indices?: Int32Array; encoderInput?: unknown },
): DataLoader {
  const channels = loaderChannels(backbone, store, options.encoderInput);
  return new DataLoader(store, {
    batchSize: options.batchSize ?? 256,
    shuffle: false,
    dropLast: false,
    normalize: options.normalization,
    indices: options.indices,
    outputSize: options.imageSize,
    channels,
  });
}

/**
 * Pooled outputs of several blocks in one pass over the store (eval mode, no grad, batched):
 * one float32 tensor per block, rows in store (or `indices`) order.
 */
export async function extractLayerFeatures(
  backbone: Backbone,
  store: SampleStore,
  options: LayerExtractOptions,
): Promise<Map<string, Tensor>> {
  for (const block of options.blocks) checkBlock(backbone, block);
  const pool = options.pool ?? 'gap';
  if (!POOLS.includes(pool)) throw new RangeError(`pool must be one of ${POOLS.join(', ')}, got '${String(pool)}'`);
  const loader = evalLoader(backbone, store, options);
  const out = new Map<string, Tensor>();
  const wasTraining = backbone.training;
  backbone.eval();
  try {
    let row = 0;
    for await (const batch of loader.epoch(0)) {
      const n = batch.images.shape[0];
      const pooled = noGrad(() =>
        tidy(() => {
          const images = options.encoderInput ? options.encoderInput(batch.images) : batch.images;
          return new Map([...backbone.features(images, options.blocks)].map(([block, maps]) => [block, poolFeatures(maps, pool)]));
        }),
      );
      for (const [block, features] of pooled) {
        if (!out.has(block)) out.set(block, empty([loader.numSamples, ...features.shape.slice(1)]));
        tidy(() => out.get(block)!.narrow(0, row, n).copy_(features));
        features.dispose();
      }
      row += n;
      disposeBatch(batch);
    }
  } finally {
    await loader.close();
    backbone.train(wasTraining);
  }
  return out;
}

/** Pooled features of one block: a float32 N x D tensor (N x C x H x W with pool 'none'). */
export async function extractFeatures(backbone: Backbone, store: SampleStore, options: ExtractOptions): Promise<Tensor> {
  const { block, ...rest } = options;
  const features = await extractLayerFeatures(backbone, store, { ...rest, blocks: [block] });
  return features.get(block) ?? empty([0]);
}

/** What two features files must share to be compared: the same network, block, pooling and input preprocessing. */
const MATCHED_META = ['checkpoint', 'backbone', 'module', 'layer', 'pool', 'imageSize', 'normalization'] as const;

/** Where a features file's rows were read from (`source`, or for older files the data spec and split). */
const sourceOf = (meta: Record<string, unknown>): string | undefined =>
  (meta.source as string | undefined) ?? (meta.data === undefined ? undefined : `${String(meta.data)}:${String(meta.split)}`);

/**
 * Refuses a train/test pair of features files that cannot give an honest number: the same file,
 * test rows that are also training rows (same source and shared sample paths), or files made by
 * different checkpoints, blocks, pooling or preprocessing (unless `allowMismatch`, then a warning).
 */
export function checkFeaturePair(
  train: { path: string; file: FeatureFile },
  test: { path: string; file: FeatureFile },
  options: { allowMismatch?: boolean; log?: (line: string) => void } = {},
): void {
  if (realpathSync(train.path) === realpathSync(test.path)) {
    throw new Error(`--train and --test are the same file (${test.path}): the test samples would be trained on`);
  }
  const [a, b] = [train.file.meta, test.file.meta];
  const differ = MATCHED_META.filter((key) => key in a && key in b && JSON.stringify(a[key]) !== JSON.stringify(b[key]));
  if (differ.length > 0) {
    const what = differ.map((key) => `${key} ${JSON.stringify(a[key])} vs ${JSON.stringify(b[key])}`).join('; ');
    const message = `the features files were made differently (train vs test: ${what})`;
    if (!options.allowMismatch) throw new Error(`${message}; embed both the same way, or pass --allow-mismatch to evaluate them anyway`);
    options.log?.(`warning: ${message}`);
  }
  const source = sourceOf(a);
  if (source !== sourceOf(b)) return;
  const trainPaths = new Set(train.file.paths);
  const shared = test.file.paths.filter((path) => trainPaths.has(path));
  if (shared.length > 0) {
    throw new Error(
      `${shared.length} of the ${test.file.paths.length} test samples are also training samples (${shared.slice(0, 3).join(', ')}` +
        `${shared.length > 3 ? ', ...' : ''}${source ? `, both from ${source}` : ''}): the score would count memorized samples. ` +
        `Embed the test split for --test (pretext embed --split test)`,
    );
  }
}

/** A features file: labeled features plus where each row came from and how it was made. */
export interface FeatureFile extends LabeledFeatures {
  paths: string[];
  meta: Record<string, unknown>;
}

const FORMAT = 'pretext-features-1';

export function saveFeatures(path: string, file: FeatureFile): void {
  const n = file.features.shape[0];
  if (file.labels.length !== n || file.paths.length !== n) {
    throw new Error(`saveFeatures: ${n} feature rows but ${file.labels.length} labels and ${file.paths.length} paths`);
  }
  tidy(() =>
    safetensors.save(
      path,
      { features: file.features.float().contiguous(), labels: fromTypedArray(BigInt64Array.from(file.labels, BigInt)) },
      {
        format: FORMAT,
        classNames: JSON.stringify(file.classNames),
        paths: JSON.stringify(file.paths),
        meta: JSON.stringify(file.meta),
      },
    ),
  );
}

export function loadFeatures(path: string): FeatureFile {
  const { tensors, metadata } = safetensors.load(path);
  const fail = (what: string): never => {
    for (const t of tensors.values()) t.dispose();
    throw new Error(`features file ${path}: ${what}`);
  };
  const features = tensors.get('features');
  const labels = tensors.get('labels');
  if (!features || !labels) return fail(`needs tensors 'features' and 'labels', has ${[...tensors.keys()].join(', ') || 'none'}`);
  if (features.dtype !== 'float32' || features.ndim < 2)
    fail(`'features' must be float32 N x D, got ${features.dtype} [${features.shape}]`);
  if (labels.ndim !== 1) fail(`'labels' must be 1-d, got [${labels.shape}]`);
  if (labels.shape[0] !== features.shape[0]) {
    fail(`features and labels have different lengths (${features.shape[0]} feature rows, ${labels.shape[0]} labels)`);
  }
  const parse = <T>(key: string, fallback: T): T => {
    try {
      return metadata[key] === undefined ? fallback : (JSON.parse(metadata[key]) as T);
    } catch (e) {
      return fail(`metadata '${key}' is not JSON: ${(e as Error).message}`);
    }
  };
  const labelArray = Int32Array.from(labels.toArray());
  labels.dispose();
  const classNames = parse<string[]>('classNames', []);
  const numClasses = labelArray.reduce((m, l) => Math.max(m, l + 1), 0);
  return {
    features,
    labels: labelArray,
    classNames: classNames.length ? classNames : Array.from({ length: numClasses }, (_, i) => String(i)),
    paths: parse<string[]>('paths', []),
    meta: parse<Record<string, unknown>>('meta', {}),
  };
}

export interface EmbedOptions {
  /** A run folder or a checkpoint sidecar. */
  checkpoint: string;
  /** A `--data` spec: folder, store file, 'cifar10', 'fashion-mnist'. */
  data: string;
  /** Default 'train'; 'test' reads a folder's test/ (or val/). */
  split?: Split;
  /** The run's module to read: 'backbone' (default) or one of the task's probes (e.g. 'discriminator'). */
  module?: string;
  /** Block to read; default the module's last. */
  layer?: string;
  /** The safetensors file to write. */
  out: string;
  pool?: Pool;
  batchSize?: number;
  /** Embed a seeded random subset of this many samples. */
  limit?: number;
  seed?: number;
  /** Also draw the embedding map and retrieval grid into this folder. */
  pictures?: string;
  log?: (line: string) => void;
}

/** Embeds a dataset split with a trained run's backbone (or another of its modules) and writes the features file. */
export async function embed(options: EmbedOptions): Promise<{ path: string; file: FeatureFile; store: SampleStore; indices: Int32Array }> {
  const pretrained = loadPretrainedModule(options.checkpoint, { module: options.module });
  const { backbone, config, module } = pretrained;
  const layer = options.layer ?? backbone.blockNames[backbone.blockNames.length - 1];
  checkBlock(backbone, layer);
  const split = options.split ?? 'train';
  const store = await resolveDataset(options.data, { split, size: pretrained.imageSize, log: options.log });
  const indices = options.limit ? subsetIndices(store.n, options.limit, options.seed ?? 0) : allRows(store.n);
  const pool = options.pool ?? 'gap';
  const meter = performance.now();
  const features = await extractFeatures(backbone, store, {
    block: layer,
    pool,
    batchSize: options.batchSize,
    normalization: pretrained.normalization,
    imageSize: pretrained.imageSize,
    indices,
    encoderInput: pretrained.encoderInput,
  });
  const file: FeatureFile = {
    features,
    ...labelsOf(store, indices),
    paths: Array.from(indices, (i) => store.paths[i]),
    meta: {
      checkpoint: pretrained.checkpoint,
      task: config.task,
      backbone: config.backbone,
      module,
      layer,
      pool,
      data: options.data,
      split,
      source: store.origin,
      imageSize: pretrained.imageSize,
      normalization: pretrained.normalization,
      seconds: (performance.now() - meter) / 1000,
    },
  };
  saveFeatures(options.out, file);
  options.log?.(
    `embedded ${indices.length} ${options.data} ${split} images at ${layer}${module === 'backbone' ? '' : ` of the ${module}`} (${pool}, ${features.shape[1]} dims) into ${options.out}`,
  );
  if (options.pictures) {
    const title = `${config.task} ${module === 'backbone' ? config.backbone : module} ${layer}, ${options.data} ${split}`;
    const written = await writeFeaturePictures(file, { store, indices }, options.pictures, { seed: options.seed, title });
    options.log?.(`pictures: ${written.join(', ')}`);
  }
  return { path: options.out, file, store, indices };
}
