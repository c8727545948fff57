// What tasks that output images share: the loader's normalization, kept in the task state so that
// a loaded run scores in the units it trained in and undone for metrics in [0, 1] display units;
// image answers with their PSNR; and the shape of a backbone's output, which sizes a decoder.
import { noGrad, tidy, zeros, type Tensor } from '@pretext/torch';
import { datasetStats, denormalizeImages } from '../data/loader.js';
import type { SampleStore } from '../data/store.js';
import type { Backbone } from '../models/backbone.js';
import type { ImageAnswer, TaskState } from './task.js';

export interface Normalization {
  mean: number[];
  std: number[];
}

/** The training store's per-channel normalization (identity without a store), saved with the task state. */
export class KeptNormalization {
  value: Normalization;

  constructor(channels: number, store?: SampleStore) {
    this.value = store ? datasetStats(store) : { mean: Array<number>(channels).fill(0), std: Array<number>(channels).fill(1) };
  }

  /** Loader-normalized images in display units, clamped to [0, 1] unless `clamp` is false. */
  toDisplay(images: Tensor, clamp = true): Tensor {
    return denormalizeImages(images, this.value.mean, this.value.std, clamp);
  }

  state(): TaskState {
    return { json: { normalization: this.value } };
  }

  load(state: TaskState): void {
    const saved = (state.json as { normalization?: Normalization } | undefined)?.normalization;
    if (saved) this.value = saved;
  }
}

/** One answer per image of N x C x H x W `images`, scored by its PSNR in dB. */
export function psnrAnswers(images: Tensor, psnr: Tensor): ImageAnswer[] {
  return psnr.toArray().map((value, i) => ({ image: images.select(0, i), score: { name: 'PSNR', value } }));
}

/** [C, H, W] of the backbone's output for `channels` x `size` x `size` images: a dry forward in eval mode (BatchNorm statistics untouched). */
export function backboneOutputShape(backbone: Backbone, channels: number, size: number): number[] {
  const wasTraining = backbone.training;
  backbone.eval();
  try {
    return noGrad(() => tidy(() => backbone.forward(zeros([1, channels, size, size])).shape.slice(1)));
  } finally {
    backbone.train(wasTraining);
  }
}
