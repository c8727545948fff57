// `pretext bench`: the results table. Rows are pretext tasks (trained runs, or pretrained here with
// a stated budget) plus the random-init and supervised baselines of the same backbone; columns are
// protocols at all labels and at K labels per class; one table per dataset, written as markdown,
// JSON and SVG charts. Every row records its config and seed.
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { makeDirectory, type Tensor } from '@pretext/torch';
import { resolveDataset } from '../data/datasets.js';
import { datasetStats } from '../data/loader.js';
import type { SampleStore } from '../data/store.js';
import type { Backbone } from '../models/backbone.js';
import { z } from 'zod';
import { budgetSchema, readConfigFile, validate, type TrainConfigInput } from '../config/schema.js';
import { loadPretrained, type Pretrained } from '../train/pretrained.js';
import { loadPretrainedModule } from '../eval/pretrained-module.js';
import { formatBudget } from '../util/budget.js';
import { PRECISIONS, resolvePrecision, type PrecisionSetting } from '../util/precision.js';
import { train as pretrain } from '../train/trainer.js';
import { subsetIndices } from '../util/random.js';
import { extractFeatures, extractLayerFeatures, type Pool } from '../eval/features.js';
import { randomBackbone, reportOnTest, trainSupervised, type SupervisedOptions } from '../eval/finetune.js';
import { allRows, labelsOf, type Compute, type EvalResult } from '../eval/metrics.js';
import { confusionHeatmap } from '../eval/pictures.js';
import {
  evaluateBackbone,
  evaluateFeatures,
  evaluateLayerFeatures,
  lowShotStoreRows,
  withLowShot,
  type Protocol,
  type ProtocolOptions,
} from '../eval/protocols.js';
import { groupedBarChartSvg, writeText } from '../viz/svg.js';
import { readEpochRecords } from '../util/run-files.js';

export interface BenchRow {
  /** Row label, e.g. 'rotation'. */
  name: string;
  /** Trained run folders by dataset, e.g. { cifar10: 'runs/rotation-c10' }. */
  runs?: Record<string, string>;
  /** Otherwise pretrain here with train(): a config without data and out (they are filled in per dataset). */
  pretrain?: Omit<TrainConfigInput, 'data' | 'out'>;
}

export interface BenchOptions {
  /** Output folder: results.md, results.json, chart-<dataset>.svg, confusion heatmaps, pretraining runs. */
  out: string;
  /** Default ['cifar10', 'fashion-mnist']. */
  datasets?: string[];
  rows: BenchRow[];
  /** Backbone of the baselines; default the first row's (from its run or pretrain config), else 'nin4'. */
  backbone?: string;
  /**
   * Block the protocols read; default 'block2' where it exists (RotNet's best on CIFAR-10), else the
   * last. 'best': each row's best block in the by-block pass (all labels, under `pool`).
   */
  block?: string;
  pool?: Pool;
  /** Default ['linear', 'knn']. */
  protocols?: Protocol[];
  /** K columns besides all labels (e.g. 20, 100, 400, 1000). */
  labelsPerClass?: number[];
  /** Default both. */
  baselines?: { random?: boolean; supervised?: boolean };
  /** Linear probe on every block of every row (default true). */
  layers?: boolean;
  /** Poolings of that by-block probe (default [pool]): e.g. a 2x2 grid and the global average. */
  layerPools?: Pool[];
  seed?: number;
  /** Seeded subsets of each split, for quick runs. */
  trainLimit?: number;
  testLimit?: number;
  protocolOptions?: Omit<ProtocolOptions, 'labelsPerClass' | 'seed'>;
  /** Its precision 'auto' (default) as a pretraining run's. */
  supervised?: Omit<SupervisedOptions, 'precision'> & { precision?: PrecisionSetting };
  /** Reuse the finished rows of an earlier run of the same bench in `out` (its results.json). */
  resume?: boolean;
  log?: (line: string) => void;
}

export interface BenchCell {
  protocol: Protocol;
  labelsPerClass?: number;
  top1: number;
  compute: Compute;
  result: EvalResult;
}

export interface BenchRowResult {
  dataset: string;
  name: string;
  kind: 'pretext' | 'random' | 'supervised';
  /** The evaluation seed (low-shot draws, probes, baseline init); a pretext row's pretraining seed is config.seed. */
  seed: number;
  /** Everything needed to rerun the row. */
  config: Record<string, unknown>;
  /** The pretraining budget (pretext rows). */
  pretraining?: {
    epochs: number;
    steps?: number;
    cpuMinutes?: number;
    wallMinutes?: number;
    runDir: string;
    /** The row's budget and whether it ended the run (else its epochs did). */
    budget?: string;
    stoppedByBudget?: boolean;
    imagesSeen?: number;
  };
  /** The block the protocols read. */
  block: string;
  cells: Record<string, BenchCell>;
  layers?: { block: string; pool: Pool; top1: number }[];
  /** The best block under `pool` (the main columns' pooling). */
  bestBlock?: string;
}

export interface BenchResult {
  createdAt: string;
  settings: Record<string, unknown>;
  columns: string[];
  rows: BenchRowResult[];
  files: string[];
}

/** RotNet's CIFAR-10 numbers (Gidaris et al. 2018, full compute), the anchor for the rotation row. */
export const ROTNET_CIFAR10 = {
  nonlinearBlock2: 89.06,
  convBlock2: 91.16,
  supervisedNin: 92.8,
  lowShotConv: { 20: 64.6, 100: 75.3, 400: 82.8, 1000: 86.4 } as Record<number, number>,
};

const allBudgets = (options: BenchOptions): (number | undefined)[] => [undefined, ...(options.labelsPerClass ?? [])];

export const columnKey = (protocol: Protocol, k?: number): string => (k === undefined ? protocol : `${protocol}@${k}`);

interface DatasetContext {
  dataset: string;
  train: SampleStore;
  test: SampleStore;
  trainRows: Int32Array;
  testRows: Int32Array;
  /** Random-init rows of networks other than the shared baseline, by architecture and input. */
  ownRandomRows: Map<string, BenchRowResult>;
  /** A finished row of an earlier run of this bench (--resume), instead of evaluating it again. */
  reuse(match: (row: BenchRowResult) => boolean): BenchRowResult | undefined;
}

function defaultBlock(backbone: Backbone, block?: string): string {
  return block ?? (backbone.blockNames.includes('block2') ? 'block2' : backbone.blockNames[backbone.blockNames.length - 1]);
}

/** A backbone to evaluate; `fresh` rebuilds it for fine-tuning, which trains in place. */
interface RowModel {
  backbone: Backbone;
  fresh: () => Backbone;
  normalization: { mean: number[]; std: number[] };
  imageSize?: number;
  /** What the backbone sees of the loader's images (the run's task encoderInput, e.g. colorization's L). */
  encoderInput?: (images: Tensor) => Tensor;
}

/**
 * Evaluates one backbone under each protocol at each label budget `ks` (undefined: all labels).
 * `drawn`: ctx.trainRows already are the K-per-class draw of the single budget in `ks` (only those
 * rows are embedded); the protocols train on all of them and the cells record K.
 */
async function evaluateRow(
  ctx: DatasetContext,
  options: BenchOptions,
  model: RowModel,
  ks: (number | undefined)[],
  drawn = false,
): Promise<Pick<BenchRowResult, 'block' | 'cells' | 'layers' | 'bestBlock'>> {
  const { backbone, fresh, normalization, imageSize, encoderInput } = model;
  const seed = options.seed ?? 0;
  const protocols = options.protocols ?? ['linear', 'knn'];
  // 'best': the main columns read the block that the by-block pass (all labels, `pool`) ranks first.
  const bestFirst = options.block === 'best' && options.layers !== false && !drawn;
  let block = bestFirst || options.block === 'best' ? defaultBlock(backbone) : defaultBlock(backbone, options.block);
  const input = () => ({
    train: ctx.train,
    test: ctx.test,
    block,
    pool: options.pool,
    normalization,
    imageSize,
    trainIndices: ctx.trainRows,
    testIndices: ctx.testRows,
  });
  if (drawn && ks.length !== 1) throw new Error('evaluateRow: rows drawn for one label budget, but several budgets given');
  /** Protocol options for budget k, and the result marked with it. */
  const budget = (k: number | undefined): ProtocolOptions => ({ ...options.protocolOptions, labelsPerClass: drawn ? undefined : k, seed });
  const marked = (k: number | undefined, result: EvalResult) => (drawn ? withLowShot(result, { labelsPerClass: k, seed }) : result);
  const cells: Record<string, BenchCell> = {};
  const add = (protocol: Protocol, k: number | undefined, result: EvalResult) => {
    cells[columnKey(protocol, k)] = { protocol, labelsPerClass: k, top1: result.top1, compute: result.compute, result };
    options.log?.(`  ${ctx.dataset} ${columnKey(protocol, k)}: ${result.top1.toFixed(2)}%`);
  };
  const featureProtocols = protocols.filter((p): p is 'linear' | 'knn' | 'mlp' => p === 'linear' || p === 'knn' || p === 'mlp');
  const blocks = options.layers === false ? [block] : [...backbone.blockNames];
  const pool = options.pool ?? 'gap';
  const logLayers = (p: Pool, layers: { block: string; result: EvalResult }[]) =>
    options.log?.(
      `  ${ctx.dataset} linear probe by block (${p}): ${layers.map((l) => `${l.block} ${l.result.top1.toFixed(2)}%`).join(', ')}`,
    );
  let layerSummary: Pick<BenchRowResult, 'layers' | 'bestBlock'> = {};
  if (featureProtocols.length || options.layers !== false) {
    const extract = (store: SampleStore, rows: Int32Array) =>
      extractLayerFeatures(backbone, store, { blocks, pool: options.pool, normalization, imageSize, indices: rows, encoderInput });
    const train = await extract(ctx.train, ctx.trainRows);
    const test = await extract(ctx.test, ctx.testRows);
    const [trainLabels, testLabels] = [labelsOf(ctx.train, ctx.trainRows), labelsOf(ctx.test, ctx.testRows)];
    // The all-labels linear probe on `block` is also the by-block pass's cell for it: fitted once.
    const fitted = new Map<string, EvalResult>();
    const byBlock = () => {
      const { layers, best } = evaluateLayerFeatures(train, test, trainLabels, testLabels, { ...options.protocolOptions, seed }, fitted);
      for (const l of layers) fitted.set(l.block, l.result);
      layerSummary = { layers: layers.map((l) => ({ block: l.block, pool, top1: l.result.top1 })), bestBlock: best };
      logLayers(pool, layers);
      return best;
    };
    try {
      if (bestFirst) block = byBlock();
      for (const protocol of featureProtocols) {
        for (const k of ks) {
          const trainSet = { ...trainLabels, features: train.get(block)! };
          const reused = protocol === 'linear' && k === undefined ? fitted.get(block) : undefined;
          const result =
            reused ?? marked(k, evaluateFeatures(protocol, trainSet, { ...testLabels, features: test.get(block)! }, budget(k)));
          if (protocol === 'linear' && k === undefined) fitted.set(block, result);
          add(protocol, k, result);
        }
      }
      if (options.layers !== false && !bestFirst) byBlock();
    } finally {
      for (const t of [...train.values(), ...test.values()]) t.dispose();
    }
  }
  // The by-block probe again under each further pooling.
  for (const other of options.layers === false ? [] : (options.layerPools ?? []).filter((p) => p !== pool)) {
    const extract = (store: SampleStore, rows: Int32Array) =>
      extractLayerFeatures(backbone, store, { blocks, pool: other, normalization, imageSize, indices: rows, encoderInput });
    const [train, test] = [await extract(ctx.train, ctx.trainRows), await extract(ctx.test, ctx.testRows)];
    try {
      const trainLabels = labelsOf(ctx.train, ctx.trainRows);
      const { layers } = evaluateLayerFeatures(train, test, trainLabels, labelsOf(ctx.test, ctx.testRows), {
        ...options.protocolOptions,
        seed,
      });
      layerSummary.layers!.push(...layers.map((l) => ({ block: l.block, pool: other, top1: l.result.top1 })));
      logLayers(other, layers);
    } finally {
      for (const t of [...train.values(), ...test.values()]) t.dispose();
    }
  }
  if (protocols.includes('conv')) {
    const maps = (store: SampleStore, rows: Int32Array): Promise<Tensor> =>
      extractFeatures(backbone, store, { block, pool: 'none', normalization, imageSize, indices: rows, encoderInput });
    const [train, test] = [await maps(ctx.train, ctx.trainRows), await maps(ctx.test, ctx.testRows)];
    try {
      for (const k of ks) {
        const result = evaluateFeatures(
          'conv',
          { ...labelsOf(ctx.train, ctx.trainRows), features: train },
          { ...labelsOf(ctx.test, ctx.testRows), features: test },
          budget(k),
        );
        add('conv', k, marked(k, result));
      }
    } finally {
      train.dispose();
      test.dispose();
    }
  }
  if (protocols.includes('finetune')) {
    for (const k of ks) add('finetune', k, marked(k, await evaluateBackbone('finetune', { ...input(), backbone: fresh() }, budget(k))));
  }
  return { block, cells, ...layerSummary };
}

/**
 * What the probed checkpoint of an existing run (its best, else its latest) had cost: epochs,
 * steps, images and CPU minutes from the checkpoint, the budget from the run's config.
 */
function runBudget(runDir: string, loaded: Pretrained): BenchRowResult['pretraining'] {
  const { step, info = {} } = JSON.parse(readFileSync(loaded.checkpoint, 'utf8')) as {
    step?: number;
    info?: { cpuSeconds?: number; budgetSpent?: number; imagesSeen?: number };
  };
  const { budget } = loaded.config;
  // Runs from before checkpoints kept their CPU seconds: a CPU budget's spending is the same clock.
  const cpuSeconds = info.cpuSeconds ?? (budget?.cpuMinutes !== undefined ? info.budgetSpent : undefined);
  const records = readEpochRecords(runDir);
  const wallSeconds = records.reduce((s, r) => s + (r.seconds ?? 0), 0);
  return {
    epochs: info.imagesSeen !== undefined && loaded.samples ? info.imagesSeen / loaded.samples : (records.at(-1)?.epoch ?? 0),
    steps: step ?? records.at(-1)?.steps,
    imagesSeen: info.imagesSeen,
    cpuMinutes: cpuSeconds === undefined ? undefined : cpuSeconds / 60,
    wallMinutes: cpuSeconds === undefined && wallSeconds ? wallSeconds / 60 : undefined,
    budget: budget && formatBudget(budget),
    runDir,
  };
}

/**
 * A pretext row, and the random init of its own network when that differs from the shared baseline
 * (another backbone, input channels or side, or an input mapping such as colorization's L): the
 * same architecture fed the same way, so that the row's margin compares like with like.
 */
/** Where a row's run is: the run folder it names, or where the bench pretrains it. */
const rowRunDir = (ctx: DatasetContext, row: BenchRow, options: BenchOptions) =>
  row.runs?.[ctx.dataset] ?? join(options.out, 'runs', `${ctx.dataset}-${row.name}`);

async function pretextRows(ctx: DatasetContext, row: BenchRow, options: BenchOptions, baseline: string): Promise<BenchRowResult[]> {
  const ranFrom = (r: BenchRowResult) => r.config.runDir === rowRunDir(ctx, row, options);
  const result = ctx.reuse((r) => r.kind === 'pretext' && r.name === row.name && ranFrom(r)) ?? (await pretextRow(ctx, row, options));
  const runDir = result.config.runDir as string;
  const seed = options.seed ?? 0;
  const random = loadPretrainedModule(runDir, { randomSeed: seed });
  const own =
    random.config.backbone !== baseline ||
    random.encoderInput ||
    random.imageSize !== ctx.train.height ||
    random.backbone.inChannels !== ctx.train.channels;
  if (!own || options.baselines?.random === false) return [result];
  // Rows that share a network (jigsaw and context, both NIN-4 at 64 px) share its random-init row.
  const key = random.encoderInput ? undefined : `${random.config.backbone}|${random.imageSize}|${random.backbone.inChannels}`;
  const reused = ctx.reuse((r) => r.kind === 'random' && ranFrom(r));
  if (reused) {
    // Named again as rows come to share it.
    reused.name = `random init (${row.name})`;
    if (key !== undefined) ctx.ownRandomRows.set(key, reused);
    return [result, reused];
  }
  const shared = key === undefined ? undefined : ctx.ownRandomRows.get(key);
  if (shared) {
    shared.name = `${shared.name.slice(0, -1)}, ${row.name})`;
    options.log?.(`${row.name}'s network at random init is row '${shared.name}'`);
    return [result];
  }
  options.log?.(`evaluating ${row.name}'s network (${random.config.backbone}, ${random.imageSize} px) at random init on ${ctx.dataset}`);
  const model = {
    backbone: random.backbone,
    fresh: () => loadPretrainedModule(runDir, { randomSeed: seed }).backbone,
    normalization: random.normalization,
    imageSize: random.imageSize,
    encoderInput: random.encoderInput,
  };
  const evaluated = await evaluateRow(ctx, options, model, allBudgets(options));
  const randomRow: BenchRowResult = {
    dataset: ctx.dataset,
    name: `random init (${row.name})`,
    kind: 'random',
    seed,
    config: { backbone: random.config.backbone, init: 'random', seed, runDir },
    ...evaluated,
  };
  if (key !== undefined) ctx.ownRandomRows.set(key, randomRow);
  return [result, randomRow];
}

async function pretextRow(ctx: DatasetContext, row: BenchRow, options: BenchOptions): Promise<BenchRowResult> {
  const seed = options.seed ?? 0;
  let runDir = row.runs?.[ctx.dataset];
  let pretraining: BenchRowResult['pretraining'];
  if (!runDir) {
    if (!row.pretrain) throw new Error(`bench row '${row.name}' has neither a run for ${ctx.dataset} nor a pretrain config`);
    runDir = join(options.out, 'runs', `${ctx.dataset}-${row.name}`);
    options.log?.(`pretraining ${row.name} on ${ctx.dataset} into ${runDir}`);
    const result = await pretrain({ seed, ...row.pretrain, data: ctx.dataset, out: runDir }, { log: options.log, progress: false });
    pretraining = {
      epochs: result.history.at(-1)?.epoch ?? 0,
      steps: result.steps,
      budget: result.config.budget && formatBudget(result.config.budget),
      stoppedByBudget: result.stopped === 'budget',
      imagesSeen: result.imagesSeen,
      cpuMinutes: result.cpuSeconds / 60,
      wallMinutes: result.wallSeconds / 60,
      runDir,
    };
  }
  const loaded = loadPretrainedModule(runDir);
  pretraining ??= runBudget(runDir, loaded);
  options.log?.(`evaluating ${row.name} (${loaded.config.task}, ${loaded.config.backbone}) on ${ctx.dataset}`);
  const model = {
    backbone: loaded.backbone,
    fresh: () => loadPretrainedModule(runDir).backbone,
    normalization: loaded.normalization,
    imageSize: loaded.imageSize,
    encoderInput: loaded.encoderInput,
  };
  const evaluated = await evaluateRow(ctx, options, model, allBudgets(options));
  return {
    dataset: ctx.dataset,
    name: row.name,
    kind: 'pretext',
    seed,
    config: { ...loaded.config, runDir },
    pretraining,
    ...evaluated,
  };
}

async function randomRow(ctx: DatasetContext, backboneName: string, options: BenchOptions): Promise<BenchRowResult> {
  const seed = options.seed ?? 0;
  const make = () => randomBackbone(backboneName, ctx.train.channels, seed);
  options.log?.(`evaluating random-init ${backboneName} on ${ctx.dataset}`);
  const evaluated = await evaluateRow(
    ctx,
    options,
    { backbone: make(), fresh: make, normalization: datasetStats(ctx.train) },
    allBudgets(options),
  );
  return {
    dataset: ctx.dataset,
    name: 'random init',
    kind: 'random',
    seed,
    config: { backbone: backboneName, init: 'random', seed },
    ...evaluated,
  };
}

/**
 * The supervised baseline: per label budget, a seeded random-init backbone trained end to end on
 * those labels; 'finetune' columns report its own test accuracy, the other protocols read its
 * frozen block with the same labeled subset.
 */
async function supervisedRow(ctx: DatasetContext, backboneName: string, options: BenchOptions): Promise<BenchRowResult> {
  const seed = options.seed ?? 0;
  const protocols = options.protocols ?? ['linear', 'knn'];
  const normalization = datasetStats(ctx.train);
  const cells: Record<string, BenchCell> = {};
  let block = '';
  let pretraining: BenchRowResult['pretraining'];
  const { budget, precision: setting = 'auto', ...rest } = options.supervised ?? {};
  // As the pretext rows: bf16 where this CPU computes it natively, unless the config says otherwise.
  const supervised = { ...rest, precision: resolvePrecision(setting) };
  for (const k of allBudgets(options)) {
    const rows = lowShotStoreRows(ctx.train, ctx.trainRows, { labelsPerClass: k, seed });
    options.log?.(
      `supervised ${backboneName} on ${ctx.dataset} with ${k === undefined ? 'all' : `${k} per class`} labels (${rows.length} images)`,
    );
    const backbone = randomBackbone(backboneName, ctx.train.channels, seed);
    // A compute budget spends what a pretext row spends, on all the labels; K per class train for epochs.
    const budgeted = budget && k === undefined ? { budget } : {};
    const run = await trainSupervised(backbone, ctx.train, {
      seed,
      normalization,
      ...supervised,
      ...budgeted,
      indices: rows,
      log: options.log,
    });
    if (budgeted.budget) {
      const { epochs, cpuSeconds, wallSeconds } = run.compute;
      pretraining = {
        epochs,
        cpuMinutes: cpuSeconds / 60,
        wallMinutes: wallSeconds / 60,
        runDir: '',
        budget: formatBudget(budgeted.budget),
      };
    }
    // The frozen-feature protocols train on the same K per class the network was trained on: only those rows are embedded.
    const frozen = { ...options, protocols: protocols.filter((p) => p !== 'finetune'), layers: false };
    const model = { backbone, fresh: () => backbone, normalization };
    const evaluated = await evaluateRow({ ...ctx, trainRows: rows }, frozen, model, [k], true);
    Object.assign(cells, evaluated.cells);
    block = evaluated.block;
    if (protocols.includes('finetune')) {
      const report = await reportOnTest('supervised', run, ctx.test, { ...supervised, testIndices: ctx.testRows });
      const result = { ...report, details: { ...report.details, labelsPerClass: k } };
      cells[columnKey('finetune', k)] = { protocol: 'finetune', labelsPerClass: k, top1: result.top1, compute: result.compute, result };
      options.log?.(`  ${ctx.dataset} supervised end to end${k === undefined ? '' : ` @${k}`}: ${report.top1.toFixed(2)}%`);
    }
  }
  return {
    dataset: ctx.dataset,
    name: 'supervised',
    kind: 'supervised',
    seed,
    config: {
      backbone: backboneName,
      seed,
      ...options.supervised,
      precision: supervised.precision,
      labelsPerClass: options.labelsPerClass ?? [],
    },
    pretraining,
    block,
    cells,
  };
}

function baselineBackbone(options: BenchOptions): string {
  if (options.backbone) return options.backbone;
  const first = options.rows[0];
  if (first?.pretrain?.backbone) return first.pretrain.backbone;
  const run = first?.runs && Object.values(first.runs)[0];
  if (run) return loadPretrained(run).config.backbone;
  return 'nin4';
}

const pct = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(2));

function budgetText(row: BenchRowResult): string {
  const p = row.pretraining;
  if (!p) return row.kind === 'random' ? 'none' : 'labels';
  const parts = [
    row.kind === 'supervised' ? 'labels' : '',
    p.budget ? `budget ${p.budget}` : '',
    `${Number.isInteger(p.epochs) ? p.epochs : p.epochs.toFixed(2)} ep`,
    p.steps === undefined ? '' : `${p.steps} steps`,
    p.cpuMinutes === undefined ? '' : `${p.cpuMinutes.toFixed(1)} CPU min`,
  ];
  if (p.cpuMinutes === undefined && p.wallMinutes !== undefined) parts.push(`${p.wallMinutes.toFixed(1)} wall min`);
  return parts.filter(Boolean).join(', ');
}

function markdown(result: BenchResult, datasets: string[]): string {
  const header = (cols: string[]) => `| row | pretraining | ${cols.join(' | ')} |\n|---|---|${cols.map(() => '---:').join('|')}|`;
  const lines = [
    '# Pretext benchmark',
    '',
    `Created ${result.createdAt}. Top-1 accuracy (%) on each test set. Settings: \`${JSON.stringify(result.settings)}\``,
    '',
    'Columns: `protocol` uses all training labels, `protocol@K` K labels per class (drawn with the seed). For the supervised row, `finetune` is the network trained end to end on those labels.',
  ];
  for (const dataset of datasets) {
    const rows = result.rows.filter((r) => r.dataset === dataset);
    lines.push('', `## ${dataset}`, '', header(result.columns));
    for (const row of rows)
      lines.push(`| ${row.name} | ${budgetText(row)} | ${result.columns.map((c) => pct(row.cells[c]?.top1)).join(' | ')} |`);
    lines.push('', `Blocks read: ${rows.map((r) => `${r.name} ${r.block}`).join(', ')}.`);
    const layered = rows.filter((r) => r.layers);
    if (layered.length) {
      lines.push('', 'Linear probe by block and pooling (best block of each pooling in bold):', '');
      for (const row of layered) {
        for (const p of [...new Set(row.layers!.map((l) => l.pool))]) {
          const layers = row.layers!.filter((l) => l.pool === p);
          const best = layers.reduce((a, b) => (b.top1 > a.top1 ? b : a));
          lines.push(
            `- ${row.name}, ${p}: ${layers.map((l) => (l === best ? `**${l.block} ${pct(l.top1)}**` : `${l.block} ${pct(l.top1)}`)).join(', ')}`,
          );
        }
      }
    }
    if (dataset === 'cifar10') {
      const r = ROTNET_CIFAR10;
      lines.push(
        '',
        'RotNet paper, full compute (NIN-4, block 2): nonlinear ' +
          `${r.nonlinearBlock2}, conv ${r.convBlock2}, supervised NIN ${r.supervisedNin}; ` +
          `conv with K labels per class: ${Object.entries(r.lowShotConv)
            .map(([k, v]) => `K=${k} ${v}`)
            .join(', ')}.`,
      );
    }
    lines.push('', 'Rerun each row with its config:', '');
    for (const row of rows) lines.push(`- ${row.name} (seed ${row.seed}): \`${JSON.stringify(row.config)}\``);
  }
  return lines.join('\n') + '\n';
}

/** The rows of an earlier run of the same bench in `json` (none if there is no file); other settings are refused. */
function earlierRows(json: string, current: BenchResult): BenchRowResult[] {
  if (!existsSync(json)) return [];
  const earlier = JSON.parse(readFileSync(json, 'utf8')) as BenchResult;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const { datasets: _d, ...settings } = current.settings;
  const { datasets: _e, ...earlierSettings } = earlier.settings;
  if (!same(settings, earlierSettings) || !same(current.columns, earlier.columns))
    throw new Error(
      `--resume: ${json} was written with other settings (${JSON.stringify(earlierSettings)}); give another --out or leave out --resume`,
    );
  return earlier.rows;
}

/** Runs the benchmark and writes results.md, results.json and a chart per dataset into `options.out`. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  if (!options.rows.length && options.baselines?.random === false && options.baselines?.supervised === false)
    throw new Error('bench: nothing to run (no rows, no baselines)');
  makeDirectory(options.out);
  const datasets = options.datasets ?? ['cifar10', 'fashion-mnist'];
  const seed = options.seed ?? 0;
  const protocols = options.protocols ?? ['linear', 'knn'];
  const columns = protocols.flatMap((p) => [columnKey(p), ...(options.labelsPerClass ?? []).map((k) => columnKey(p, k))]);
  const backboneName = baselineBackbone(options);
  const rows: BenchRowResult[] = [];
  const files: string[] = [];
  const result: BenchResult = {
    createdAt: new Date().toISOString(),
    settings: {
      datasets,
      backbone: backboneName,
      block: options.block ?? 'block2 where the backbone has one, else its last',
      pool: options.pool ?? 'gap',
      protocols,
      labelsPerClass: options.labelsPerClass ?? [],
      seed,
      trainLimit: options.trainLimit,
      testLimit: options.testLimit,
      layers: options.layers ?? true,
      layerPools: options.layerPools,
      protocolOptions: options.protocolOptions,
      supervised: options.supervised,
    },
    columns,
    rows,
    files,
  };
  const md = join(options.out, 'results.md');
  const json = join(options.out, 'results.json');
  const previous = options.resume ? earlierRows(json, result) : [];
  // Written again after every row, so that a long bench stopped midway keeps the rows it finished.
  const save = () => {
    writeText(md, markdown(result, datasets));
    writeText(json, JSON.stringify(result, null, 1));
  };
  const add = (...done: BenchRowResult[]) => {
    rows.push(...done);
    save();
  };
  for (const dataset of datasets) {
    const train = await resolveDataset(dataset, { split: 'train', log: options.log });
    const test = await resolveDataset(dataset, { split: 'test', log: options.log });
    const ctx: DatasetContext = {
      dataset,
      train,
      test,
      trainRows: options.trainLimit ? subsetIndices(train.n, options.trainLimit, seed) : allRows(train.n),
      testRows: options.testLimit ? subsetIndices(test.n, options.testLimit, seed) : allRows(test.n),
      ownRandomRows: new Map(),
      reuse(match) {
        const found = previous.find((r) => r.dataset === dataset && match(r));
        if (found) options.log?.(`reusing row '${found.name}' of ${dataset} from the earlier ${json}`);
        return found;
      },
    };
    for (const row of options.rows) add(...(await pretextRows(ctx, row, options, backboneName)));
    if (options.baselines?.random !== false)
      add(ctx.reuse((r) => r.kind === 'random' && r.name === 'random init') ?? (await randomRow(ctx, backboneName, options)));
    if (options.baselines?.supervised !== false)
      add(ctx.reuse((r) => r.kind === 'supervised') ?? (await supervisedRow(ctx, backboneName, options)));
    const datasetRows = rows.filter((r) => r.dataset === dataset);
    const chart = join(options.out, `chart-${dataset}.svg`);
    files.push(
      writeText(
        chart,
        groupedBarChartSvg(
          `${dataset}: top-1 accuracy by protocol`,
          columns,
          datasetRows.map((r) => ({ name: r.name, values: columns.map((c) => r.cells[c]?.top1) })),
        ),
      ),
    );
    for (const row of datasetRows) {
      const cell = row.cells[columns[0]];
      if (cell)
        files.push(
          confusionHeatmap(
            cell.result,
            join(options.out, `confusion-${dataset}-${row.name.replace(/[^\w-]+/g, '_')}.svg`),
            `${row.name}, ${dataset}, ${columns[0]}: ${cell.top1.toFixed(2)}%`,
          ),
        );
    }
  }
  files.push(md, json);
  save();
  return result;
}

const benchConfigSchema = z
  .object({
    out: z.string().default('bench-results'),
    datasets: z.array(z.string()).optional(),
    rows: z.array(
      z
        .object({
          name: z.string(),
          runs: z.record(z.string(), z.string()).optional(),
          pretrain: z.record(z.string(), z.unknown()).optional(),
        })
        .strict(),
    ),
    backbone: z.string().optional(),
    block: z.string().optional(),
    pool: z.enum(['gap', 'grid2', 'flatten']).optional(),
    protocols: z.array(z.enum(['linear', 'knn', 'mlp', 'conv', 'finetune'])).optional(),
    labelsPerClass: z.array(z.number().int().positive()).optional(),
    baselines: z.object({ random: z.boolean().optional(), supervised: z.boolean().optional() }).strict().optional(),
    /** The supervised baseline's training: a compute budget as the pretext rows', or epochs. */
    supervised: z
      .object({
        budget: budgetSchema.optional(),
        epochs: z.number().int().positive().optional(),
        batchSize: z.number().int().positive().optional(),
        lr: z.number().positive().optional(),
        weightDecay: z.number().min(0).optional(),
        precision: z.enum(PRECISIONS).optional(),
      })
      .strict()
      .optional(),
    layers: z.boolean().optional(),
    layerPools: z.array(z.enum(['gap', 'grid2', 'flatten'])).optional(),
    seed: z.number().int().nonnegative().optional(),
    trainLimit: z.number().int().positive().optional(),
    testLimit: z.number().int().positive().optional(),
  })
  .strict();

/** Reads a bench config (JSON or YAML); errors name the bad field. */
export function readBenchConfig(path: string): BenchOptions {
  return validate(benchConfigSchema, readConfigFile(path), `bench config ${path}`) as BenchOptions;
}
