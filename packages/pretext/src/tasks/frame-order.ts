// Shuffle and Learn (Misra, Zitnick & Hebert, ECCV 2016): is a tuple of three frames of a video in
// temporal order? Tuples come from high-motion windows of a clip: the window's first and last frame
// (b, d) with a frame c between them are in order, forwards (b, c, d) or backwards (d, c, b); the
// same ends around a frame x from outside the window, (b, x, d) or (d, x, b), are shuffled. One trunk
// sees every frame; the classifier sees the three frames' features concatenated.
//
// Where the label lives: a tuple is in order exactly when its middle frame lies between its ends in
// time, and store indices grow with time inside a clip. prepare() therefore reads each label off the
// tuple's store indices (batch.indices): nothing about the epoch's order is remembered, so labels stay
// right for any batch of a resumed epoch and for tuples made elsewhere (the held-out check).
import { nn, type Tensor } from '@pretext/torch';
import { z } from 'zod';
import type { Batch } from '../data/loader.js';
import type { SampleStore } from '../data/store.js';
import { Rng } from '../util/random.js';
import type { Backbone } from '../models/backbone.js';
import { SiameseHead, SiamesePatchModel } from './patches.js';
import { accuracy, answerMark, type PretextBatch, type PretextTask, type StepResult } from './task.js';

export const TUPLE = 3;

const options = z
  .object({
    /**
     * Share of in-order tuples. The paper found 25% positives (75% negatives) best, so a model that
     * always answers "shuffled" scores 75% accuracy: `balancedAcc` (chance 50%) is logged beside `acc`.
     */
    positiveFraction: z.number().gt(0).lt(1).default(0.25),
    /**
     * Time from a tuple's first to its last frame. The paper bounds it by τmax = 60 frames (2.4 s of
     * UCF101 at 25 fps). The gestures here reverse within a second (an arm up, then down), so that a
     * frame from outside a 1 s window often lies between its ends again; 0.5 s trains faster (see
     * the frame-order report in issue 11).
     */
    windowSeconds: z.number().positive().default(0.5),
    /** Least time between a negative's outside frame and the window (paper: τmin = 15 frames, 0.6 s). */
    gapSeconds: z.number().min(0).default(0.3),
    /** Clips whose path matches this regular expression are left out of training (a held-out check). */
    holdOut: z.string().optional(),
    /** Seeds the tuples of every epoch. */
    seed: z.number().int().nonnegative().default(0),
    /** Units of the shared per-frame fc (the paper's per-frame fc7: 4096). */
    frameFeatures: z.number().int().positive().default(256),
    /** Hidden units of the classifier over the concatenated frames (the paper: none, fc8 is linear). */
    hidden: z.number().int().positive().default(256),
  })
  .strict();

export type FrameOrderOptions = z.infer<typeof options>;
export type TupleSampling = Pick<FrameOrderOptions, 'positiveFraction' | 'windowSeconds' | 'gapSeconds'>;

/**
 * The frames of one clip that sampling may use, in time order, and the windows tuples come from:
 * window `s` spans timeline positions s .. s + span.
 */
export interface Timeline {
  clip: number;
  /** Store indices, in time order. */
  frames: Int32Array;
  /** Timeline steps from a window's first to its last frame. */
  span: number;
  /** Least steps between a negative's outside frame and the window. */
  gap: number;
  /** Start positions of the high-motion windows that have room for a negative. */
  windows: Int32Array;
}

/** Outside positions of window `s` (at least `gap` steps before its start or after its end). */
function outsideCounts(t: { span: number; gap: number }, length: number, s: number): { before: number; after: number } {
  return { before: Math.max(0, s - t.gap + 1), after: Math.max(0, length - (s + t.span + t.gap)) };
}

/**
 * The high-motion windows of a clip. A window's motion is the mean stored motion (difference to the
 * previous frame) of its frames after the first; high-motion windows are those at or above the
 * median over the clip's windows (the paper weights sampling by optical-flow magnitude instead).
 */
function highMotionWindows(frames: Int32Array, span: number, gap: number, motion: Float32Array | undefined): Int32Array {
  const starts: number[] = [];
  const scores: number[] = [];
  for (let s = 0; s + span < frames.length; s++) {
    const { before, after } = outsideCounts({ span, gap }, frames.length, s);
    if (before + after === 0) continue;
    let sum = 0;
    for (let p = s + 1; p <= s + span; p++) sum += motion?.[frames[p]] ?? 0;
    starts.push(s);
    scores.push(sum / span);
  }
  const median = [...scores].sort((a, b) => a - b)[(scores.length - 1) >> 1];
  return Int32Array.from(starts.filter((_, k) => scores[k] >= median));
}

/**
 * Each clip's timeline: its frames among `indices`, in time order, with its high-motion windows.
 * Window lengths come from the clip's frame rate. Clips matching `holdOut`, and clips too short for
 * a window with a frame outside it, are left out. Motion is read per frame as stored (the difference
 * to the previous frame of the clip, even when `indices` skips that frame).
 */
export function clipTimelines(store: SampleStore, indices: Int32Array, sampling: TupleSampling, holdOut?: RegExp): Timeline[] {
  if (!store.clips?.length) {
    throw new Error('frame-order samples tuples from video clips: give a frame store made by `pretext ingest <folder> --video`');
  }
  const owner = new Int32Array(store.n).fill(-1);
  store.clips.forEach((clip, c) => owner.fill(c, clip.firstFrame, clip.firstFrame + clip.frameCount));
  const members = store.clips.map(() => [] as number[]);
  for (const i of indices) if (owner[i] >= 0) members[owner[i]].push(i);
  const timelines: Timeline[] = [];
  store.clips.forEach((clip, c) => {
    if (holdOut?.test(clip.path)) return;
    const frames = Int32Array.from(members[c]).sort();
    const span = Math.max(2, Math.round(sampling.windowSeconds * clip.fps));
    const gap = Math.max(1, Math.round(sampling.gapSeconds * clip.fps));
    const windows = highMotionWindows(frames, span, gap, store.frameMotion);
    if (windows.length) timelines.push({ clip: c, frames, span, gap, windows });
  });
  if (!timelines.length) {
    throw new Error(
      `frame-order: no clip has room for a ${sampling.windowSeconds} s window and a frame ${sampling.gapSeconds} s outside it; ` +
        'lower taskOptions.windowSeconds or gapSeconds, or ingest at a higher --fps',
    );
  }
  return timelines;
}

/**
 * `count` tuples as 3 * count store indices: a clip drawn in proportion to its frames, one of its
 * high-motion windows, in order with probability `positiveFraction`, each direction half the time.
 */
export function sampleTuples(timelines: Timeline[], count: number, positiveFraction: number, rng: Rng): Int32Array {
  const sizes = timelines.map((t) => t.frames.length);
  const total = sizes.reduce((a, b) => a + b, 0);
  const order = new Int32Array(count * TUPLE);
  for (let k = 0; k < count; k++) {
    let r = rng.int(0, total - 1);
    let c = 0;
    while (r >= sizes[c]) r -= sizes[c++];
    const t = timelines[c];
    const s = t.windows[rng.int(0, t.windows.length - 1)];
    let middle: number;
    if (rng.chance(positiveFraction)) {
      middle = s + rng.int(1, t.span - 1);
    } else {
      const { before, after } = outsideCounts(t, t.frames.length, s);
      const o = rng.int(0, before + after - 1);
      middle = o < before ? o : s + t.span + t.gap + (o - before);
    }
    const ends = rng.chance(0.5) ? [s, s + t.span] : [s + t.span, s];
    order.set([t.frames[ends[0]], t.frames[middle], t.frames[ends[1]]], k * TUPLE);
  }
  return order;
}

/** 1 where a tuple (rows of store indices, N x 3) is in temporal order either way, 0 where shuffled. */
export function tupleLabels(frames: Tensor): Tensor {
  const rows = frames.view([-1, TUPLE]);
  const [first, middle, last] = [0, 1, 2].map((k) => rows.select(1, k));
  return middle.sub(first).mul(last.sub(middle)).gt(0).long();
}

/** Mean of the per-class recalls: 50% for any constant answer, whatever the class ratio. */
export function balancedAccuracy(logits: Tensor, targets: Tensor): Tensor {
  const correct = logits.argmax(1).eq(targets).float();
  const positive = targets.float();
  const negative = positive.neg().add(1);
  const recall = (mask: Tensor) => correct.mul(mask).sum().div(mask.sum().clamp(1, null));
  return recall(positive).add(recall(negative)).div(2);
}

class FrameOrderModel extends SiamesePatchModel {
  constructor(
    backbone: Backbone,
    private readonly o: FrameOrderOptions,
    private readonly store: SampleStore | undefined,
  ) {
    super(backbone, new SiameseHead(backbone.outChannels, TUPLE, o.frameFeatures, [o.hidden], 2));
  }

  prepare(batch: Batch): PretextBatch {
    const [m, c, h, w] = batch.images.shape;
    if (m % TUPLE !== 0) {
      throw new Error(`frame-order: a batch holds tuples of ${TUPLE} frames in a row (data.samplesPerItem 3), got ${m} images`);
    }
    const frames = batch.indices.view([-1, TUPLE]);
    return { inputs: batch.images.view([m / TUPLE, TUPLE, c, h, w]), targets: tupleLabels(frames), extra: { frames } };
  }

  override step(batch: PretextBatch): StepResult {
    const logits = this.logits(batch.inputs);
    return {
      loss: nn.functional.crossEntropy(logits, batch.targets),
      metrics: { acc: accuracy(logits, batch.targets), balancedAcc: balancedAccuracy(logits, batch.targets) },
    };
  }

  /** As many tuples as training frames, drawn afresh each epoch from (seed, epoch) alone. */
  epochOrder(epoch: number, indices: Int32Array): Int32Array {
    if (!this.store) throw new Error('frame-order: epochOrder needs the training store (create(..., { store }))');
    const holdOut = this.o.holdOut ? new RegExp(this.o.holdOut) : undefined;
    const timelines = clipTimelines(this.store, indices, this.o, holdOut);
    return sampleTuples(timelines, indices.length, this.o.positiveFraction, new Rng(this.o.seed * 1_000_003 + epoch));
  }
}

const verdict = (k: number) => (k === 1 ? 'in order' : 'shuffled');

export const frameOrderTask: PretextTask<typeof options> = {
  name: 'frame-order',
  description: 'Shuffle and Learn: are three frames of a video in temporal order (either way) or shuffled?',
  paper: 'Misra, Zitnick & Hebert, Shuffle and Learn: Unsupervised Learning using Temporal Order Verification, ECCV 2016',
  options,
  // The paper's solver (github.com/imisra/shuffle-tuple): SGD at 1e-3, momentum 0.9, weight decay
  // 5e-4, batches of 128 tuples, the rate cut 10x at 80% of training; the AlexNet-style trunk here.
  defaults: {
    backbone: 'alexnet',
    epochs: 100,
    batchSize: 128,
    optimizer: { name: 'sgd', lr: 0.001, momentum: 0.9, nesterov: false, weightDecay: 5e-4 },
    schedule: { name: 'multistep', milestones: [80], gamma: 0.1 },
  },
  data: { samplesPerItem: TUPLE },
  create: (backbone, o, context) => new FrameOrderModel(backbone, o, context.store),
  picture(batch, answers, display) {
    const [n, t, c, h, w] = batch.inputs.shape;
    const frames = batch.extra!.frames.toArray();
    const targets = batch.targets.toArray();
    const captions = targets.flatMap((target, i) => {
      const tuple = frames.slice(i * t, (i + 1) * t);
      // Each frame captioned with its place in time among the three; the truth under the middle
      // frame, the model's answer under the last (short enough for small frames).
      const places = tuple.map((f) => 1 + tuple.filter((g) => g < f).length);
      return [`${places[0]}`, `${places[1]} · ${verdict(target)}`, `${places[2]}${answerMark(answers?.[i], verdict)}`];
    });
    return { panels: display(batch.inputs.reshape([n * t, c, h, w])), captions, columns: t };
  },
};
