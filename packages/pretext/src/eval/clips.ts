// Action classification on video frame stores: a backbone's frame features, and summaries of them
// over segments of clips (mean, change from the first frame, spread over time; see ClipView),
// classified by the linear and kNN probes with folds that hold a whole group out.
//
// Splits:
// - 'person': clips named like PS7A{action}P{person}T{trial} (office-gestures) are grouped by person;
//   each fold trains on the other people and tests on one (leave one person out), so a probe never
//   sees the tested person. A segment is a whole clip.
// - 'halves': for stores with one clip per class (asl-gestures: one signer per word), the only split
//   there is: each clip's first half of frames against its second half, both ways. Train and test then
//   share the signer, clothes and background, so this measures recognising a clip again from other
//   moments of it (instance retrieval), not recognising the word. A segment is a half clip (whose
//   'change' view cannot match across halves: a sign's hands go up in one half, down in the other).
// Stores without labels (a flat folder) take one class per clip, named after its file.
//
// Also the frame-order task's verification accuracy on clips it did not train on.
import { resolve } from 'node:path';
import { Generator, noGrad, stack, tidy, type Tensor } from '@pretext/torch';
import { resolveDataset } from '../data/datasets.js';
import { disposeBatch } from '../data/loader.js';
import type { SampleStore } from '../data/store.js';
import type { Backbone } from '../models/backbone.js';
import { clipTimelines, frameOrderTask, sampleTuples, TUPLE, type TupleSampling } from '../tasks/frame-order.js';
import { isClassAnswer, type TaskInstance } from '../tasks/task.js';
import { Rng } from '../util/random.js';
import { evalLoader, extractLayerFeatures, inputChannels, type Normalization, type Pool } from './features.js';
import { randomBackbone } from './finetune.js';
import { knnProbe, type KnnOptions } from './knn.js';
import { linearProbe } from './linear.js';
import { selectRows, type EvalResult, type LabeledFeatures } from './metrics.js';
import { loadPretrainedModule } from './pretrained-module.js';

export type ClipSplit = 'person' | 'halves';
export const CLIP_SPLITS: readonly ClipSplit[] = ['person', 'halves'];

/** The recorded person of a clip named like PS7A2P3T1.avi ('P3'). */
export function personOf(path: string): string {
  const match = /P(\d+)T\d+[^/]*$/.exec(path);
  if (!match) throw new Error(`clip '${path}' does not name its person as P{n}T{n} (e.g. PS7A1P2T3.avi); use --split halves`);
  return `P${match[1]}`;
}

/** Each clip's frames by group: one segment per clip and group, in store order. */
export interface Segment {
  clip: number;
  group: string;
  /** First store index and count: a segment's frames are consecutive. */
  start: number;
  count: number;
}

export function clipSegments(store: SampleStore, split: ClipSplit): Segment[] {
  if (!store.clips?.length) throw new Error('clip evaluation needs a video frame store (pretext ingest <folder> --video)');
  return store.clips.flatMap((clip, c) => {
    if (split === 'person') return [{ clip: c, group: personOf(clip.path), start: clip.firstFrame, count: clip.frameCount }];
    const half = Math.ceil(clip.frameCount / 2);
    return [
      { clip: c, group: 'first half', start: clip.firstFrame, count: half },
      { clip: c, group: 'second half', start: clip.firstFrame + half, count: clip.frameCount - half },
    ].filter((s) => s.count > 0);
  });
}

/** Class of each clip and the class names: the store's labels, or one class per clip when it has none. */
export function clipClasses(store: SampleStore): { labels: Int32Array; classNames: string[] } {
  const clips = store.clips ?? [];
  if (clips.every((clip) => clip.label >= 0)) return { labels: Int32Array.from(clips, (clip) => clip.label), classNames: store.classNames };
  return { labels: Int32Array.from(clips, (_, c) => c), classNames: clips.map((clip) => clip.path.replace(/\.[^./]+$/, '')) };
}

/** Folds that each hold one group out: train on the rows of every other group, test on its rows. */
export function leaveOneGroupOut(groups: readonly string[]): { group: string; train: Int32Array; test: Int32Array }[] {
  const rowsOf = (keep: (g: string) => boolean) => Int32Array.from(groups.flatMap((g, i) => (keep(g) ? [i] : [])));
  return [...new Set(groups)].sort().map((group) => ({ group, train: rowsOf((g) => g !== group), test: rowsOf((g) => g === group) }));
}

export interface ProbePair {
  linear: EvalResult;
  knn: EvalResult;
}

/**
 * What one sample is: a frame ('frames'), or a segment (a clip, or half clip) described by its
 * frames' features: their mean ('mean'), their mean change from the segment's first frame
 * ('change', which cancels whoever and whatever stays put), or their spread over time ('spread').
 */
export type ClipView = 'frames' | 'mean' | 'change' | 'spread';
export const CLIP_VIEWS: readonly ClipView[] = ['frames', 'mean', 'change', 'spread'];

const describeSegment: Record<Exclude<ClipView, 'frames'>, (frames: Tensor) => Tensor> = {
  mean: (frames) => frames.mean(0),
  change: (frames) => frames.sub(frames.narrow(0, 0, 1)).mean(0),
  spread: (frames) => frames.std(0, 0),
};

export interface ClipFold {
  group: string;
  scores: Record<ClipView, ProbePair>;
}

export interface ClipEvaluation {
  split: ClipSplit;
  block: string;
  classNames: string[];
  folds: ClipFold[];
  /** Top-1 (%) averaged over the folds. */
  mean: Record<ClipView, { linear: number; knn: number }>;
}

export interface ClipEvalOptions {
  split: ClipSplit;
  /** Blocks to read (default the backbone's last). */
  blocks?: string[];
  /** How a block's maps become a frame's vector (default 'gap'; 'grid2' keeps where things are). */
  pool?: Pool;
  normalization: Normalization;
  imageSize?: number;
  /** What the backbone sees of the frames (the run's task encoderInput), default the frames. */
  encoderInput?: (images: Tensor) => Tensor;
  knn?: KnnOptions;
  seed?: number;
}

function probePair(set: LabeledFeatures, train: Int32Array, test: Int32Array, options: ClipEvalOptions): ProbePair {
  const [trainSet, testSet] = [selectRows(set, train), selectRows(set, test)];
  try {
    // 10 neighbours: the InstDisc default of 200 outnumbers a class's frames in these stores.
    return { linear: linearProbe(trainSet, testSet, { seed: options.seed }), knn: knnProbe(trainSet, testSet, { k: 10, ...options.knn }) };
  } finally {
    trainSet.features.dispose();
    testSet.features.dispose();
  }
}

/** The folds' probes on one block's frame features (rows in store order over `segments`), for every view. */
function evaluateBlock(
  block: string,
  frameFeatures: Tensor,
  segments: Segment[],
  store: SampleStore,
  options: ClipEvalOptions,
): ClipEvaluation {
  const { labels: clipLabels, classNames } = clipClasses(store);
  const frameRows = segments.flatMap((s) => Array.from({ length: s.count }, () => s));
  const labelsOf = (rows: Segment[]) => Int32Array.from(rows, (s) => clipLabels[s.clip]);
  const starts = segments.map((_, k) => segments.slice(0, k).reduce((sum, s) => sum + s.count, 0));
  const segmentSet = (describe: (frames: Tensor) => Tensor): LabeledFeatures => ({
    features: tidy(() => stack(segments.map((s, k) => describe(frameFeatures.narrow(0, starts[k], s.count))))),
    labels: labelsOf(segments),
    classNames,
  });
  const sets: Record<ClipView, LabeledFeatures> = {
    frames: { features: frameFeatures, labels: labelsOf(frameRows), classNames },
    mean: segmentSet(describeSegment.mean),
    change: segmentSet(describeSegment.change),
    spread: segmentSet(describeSegment.spread),
  };
  const frameFolds = leaveOneGroupOut(frameRows.map((s) => s.group));
  const segmentFolds = leaveOneGroupOut(segments.map((s) => s.group));
  const folds: ClipFold[] = frameFolds.map((fold, k) => ({
    group: fold.group,
    scores: Object.fromEntries(
      CLIP_VIEWS.map((view) => {
        const { train, test } = view === 'frames' ? fold : segmentFolds[k];
        return [view, probePair(sets[view], train, test, options)];
      }),
    ) as Record<ClipView, ProbePair>,
  }));
  for (const view of CLIP_VIEWS) if (view !== 'frames') sets[view].features.dispose();
  const average = (view: ClipView, probe: keyof ProbePair) => folds.reduce((sum, f) => sum + f.scores[view][probe].top1, 0) / folds.length;
  return {
    split: options.split,
    block,
    classNames,
    folds,
    mean: Object.fromEntries(
      CLIP_VIEWS.map((view) => [view, { linear: average(view, 'linear'), knn: average(view, 'knn') }]),
    ) as ClipEvaluation['mean'],
  };
}

/** Action classification with a backbone's frozen features, one evaluation per block. */
export async function evaluateClips(backbone: Backbone, store: SampleStore, options: ClipEvalOptions): Promise<ClipEvaluation[]> {
  const segments = clipSegments(store, options.split);
  const blocks = options.blocks ?? [backbone.blockNames.at(-1)!];
  const indices = Int32Array.from(segments.flatMap((s) => Array.from({ length: s.count }, (_, k) => s.start + k)));
  const features = await extractLayerFeatures(backbone, store, {
    blocks,
    pool: options.pool,
    normalization: options.normalization,
    imageSize: options.imageSize,
    indices,
    encoderInput: options.encoderInput,
  });
  try {
    return blocks.map((block) => evaluateBlock(block, features.get(block)!, segments, store, options));
  } finally {
    for (const t of features.values()) t.dispose();
  }
}

export interface VerificationOptions {
  /** Clips whose path matches are the ones tested (default every clip). */
  clips?: RegExp;
  sampling: TupleSampling;
  normalization: Normalization;
  imageSize?: number;
  /** Tuples to score (default 1024), half of them in order. */
  tuples?: number;
  seed?: number;
}

/**
 * The frame-order model's verification accuracy on tuples of the chosen clips, half in order, so
 * that chance is 50%: plain accuracy and the mean per-class recall.
 */
export async function verificationAccuracy(
  instance: TaskInstance,
  backbone: Backbone,
  store: SampleStore,
  options: VerificationOptions,
): Promise<{ tuples: number; acc: number; balancedAcc: number }> {
  const clipFrames = (store.clips ?? []).flatMap((clip) =>
    options.clips && !options.clips.test(clip.path) ? [] : Array.from({ length: clip.frameCount }, (_, k) => clip.firstFrame + k),
  );
  const timelines = clipTimelines(store, Int32Array.from(clipFrames), options.sampling);
  const batchTuples = 64;
  const count = Math.ceil((options.tuples ?? 1024) / batchTuples) * batchTuples;
  const order = sampleTuples(timelines, count, 0.5, new Rng(options.seed ?? 0));
  const loader = evalLoader(backbone, store, {
    batchSize: batchTuples * TUPLE,
    normalization: options.normalization,
    imageSize: options.imageSize,
  });
  const right = [
    [0, 0],
    [0, 0],
  ]; // right[target] = [answers, correct ones]
  for (const m of Object.values(instance.modules)) m.eval();
  try {
    for await (const batch of loader.epoch(0, 0, order)) {
      const answers = noGrad(() => tidy(() => instance.answers(instance.prepare(batch, new Generator(0)))));
      for (const a of answers.filter(isClassAnswer)) {
        right[a.target][0]++;
        if (a.correct) right[a.target][1]++;
      }
      disposeBatch(batch);
    }
  } finally {
    await loader.close();
  }
  const recall = ([n, correct]: number[]) => correct / Math.max(1, n);
  return {
    tuples: count,
    acc: (right[0][1] + right[1][1]) / count,
    balancedAcc: (recall(right[0]) + recall(right[1])) / 2,
  };
}

export interface ClipReportOptions {
  /** A run folder or checkpoint sidecar. */
  checkpoint: string;
  /** A video frame store (`pretext ingest <folder> --video`). */
  data: string;
  split: ClipSplit;
  /** A block, 'all', or the backbone's last (default). */
  layer?: string;
  pool?: Pool;
  /** Seeds the random-init backbone, the probes and the verification tuples. */
  seed?: number;
  log?: (line: string) => void;
}

export interface ClipReport {
  pretrained: ClipEvaluation[];
  random: ClipEvaluation[];
  verification?: { clips: string; tuples: number; acc: number; balancedAcc: number };
}

/**
 * `pretext clips`: action classification with a trained run's backbone and with the same backbone at
 * random init, printed as a table; for a frame-order run also its verification accuracy on the
 * clips it held out (taskOptions.holdOut), or on all clips when it held none out.
 */
export async function clipReport(options: ClipReportOptions): Promise<ClipReport> {
  const log = options.log ?? (() => {});
  const pretrained = loadPretrainedModule(options.checkpoint);
  const { config, backbone, normalization, encoderInput } = pretrained;
  const store = await resolveDataset(options.data, { split: 'train', size: config.imageSize });
  const blocks = options.layer === 'all' ? [...backbone.blockNames] : [options.layer ?? backbone.blockNames.at(-1)!];
  const seed = options.seed ?? 0;
  const settings = { split: options.split, blocks, pool: options.pool, normalization, imageSize: config.imageSize, encoderInput, seed };
  const ours = await evaluateClips(backbone, store, settings);
  const random = await evaluateClips(randomBackbone(config.backbone, inputChannels(backbone), seed), store, settings);
  const [first] = ours;
  const folds = first.folds.map((f) => f.group).join(', ');
  log(
    `${options.split === 'person' ? 'leave one person out' : 'one half of each clip against the other'}: ` +
      `${first.classNames.length} classes (chance ${(100 / first.classNames.length).toFixed(1)}%), top-1 averaged over folds ${folds}; ${options.pool ?? 'gap'} features`,
  );
  const row = (block: string, name: string, cells: string[]) =>
    `${block.padEnd(6)}${name.padEnd(28)}${cells.map((c) => c.padStart(8)).join('')}`;
  log(
    `${' '.repeat(34)}${CLIP_VIEWS.map((view) => `${view === 'frames' ? view : `${options.split === 'person' ? 'clip' : 'half'} ${view}`}`.padStart(16)).join('')}`,
  );
  log(
    row(
      'block',
      'backbone',
      CLIP_VIEWS.flatMap(() => ['linear', 'kNN']),
    ),
  );
  ours.forEach((evaluation, k) => {
    for (const [name, e] of [[`${config.task} ${config.backbone}`, evaluation] as const, ['random init', random[k]] as const]) {
      log(
        row(
          e.block,
          name,
          CLIP_VIEWS.flatMap((view) => [e.mean[view].linear, e.mean[view].knn].map((v) => `${v.toFixed(1)}%`)),
        ),
      );
    }
  });
  const report: ClipReport = { pretrained: ours, random };
  if (config.task === frameOrderTask.name) {
    const taskOptions = frameOrderTask.options.parse(config.taskOptions);
    const holdOut = taskOptions.holdOut ? new RegExp(taskOptions.holdOut) : undefined;
    // The held-out clips when this store has any, else every clip (seen in training only on the run's own data).
    const clips = store.clips?.some((clip) => holdOut?.test(clip.path)) ? holdOut : undefined;
    const result = await verificationAccuracy(pretrained.instance, backbone, store, {
      clips,
      sampling: taskOptions,
      normalization,
      imageSize: config.imageSize,
      seed,
    });
    const trainedOn = resolve(options.data) === resolve(config.data);
    const which = clips ? `held-out clips /${taskOptions.holdOut}/` : `all clips (${trainedOn ? '' : 'not '}seen in training)`;
    report.verification = { clips: which, ...result };
    log(
      `frame order verification on ${which}: accuracy ${(100 * result.acc).toFixed(1)}%, ` +
        `balanced ${(100 * result.balancedAcc).toFixed(1)}% over ${result.tuples} tuples, half in order (chance 50%)`,
    );
  }
  return report;
}
