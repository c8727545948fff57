// What the patch tasks (jigsaw, context prediction) share: batched patch extraction as one gather,
// per-patch normalization, colour handling against chromatic aberration, the siamese network that
// runs one trunk over every patch and classifies the concatenated patch features, and defaults.
import { arange, nn, rand, randint, randn, stack, tensor, where, type Generator, type Tensor } from '@pretext/torch';
import { luminance } from '../data/augment.js';
import type { Batch } from '../data/loader.js';
import { MlpHead } from '../models/heads.js';
import { ClassifierTask, type TaskDefaults } from './task.js';

/** Top-left corners (int64): N x T for whole patches, or N x T x C to place each channel on its own. */
export interface PatchOffsets {
  y: Tensor;
  x: Tensor;
}

/** Offsets must stay inside the image; one read of all four bounds (a single device sync). */
function checkRanges(y: Tensor, maxY: number, x: Tensor, maxX: number): void {
  const [yLo, yHi, xLo, xHi] = stack([y.min(), y.max(), x.min(), x.max()]).toArray();
  for (const [what, lo, hi, max] of [
    ['y', yLo, yHi, maxY],
    ['x', xLo, xHi, maxX],
  ] as const) {
    if (lo < 0 || hi > max) throw new RangeError(`extractPatches: ${what} offsets must be in [0, ${max}], got [${lo}, ${hi}]`);
  }
}

/** Crops N x T x C x P x P patches from N x C x H x W images with a single gather on flat indices. */
export function extractPatches(images: Tensor, offsets: PatchOffsets, size: number): Tensor {
  const [n, c, h, w] = images.shape;
  const { y, x } = offsets;
  const perChannel = y.ndim === 3;
  if (y.shape.join() !== x.shape.join() || y.shape[0] !== n || !(y.ndim === 2 || (perChannel && y.shape[2] === c))) {
    throw new RangeError(`extractPatches: offsets must both be [${n}, T] or [${n}, T, ${c}], got [${y.shape}] and [${x.shape}]`);
  }
  checkRanges(y, h - size, x, w - size);
  const t = y.shape[1];
  const corner = perChannel ? y.mul(w).add(x) : y.mul(w).add(x).unsqueeze(2); // N x T x (C or 1)
  const sampleStart = arange(0, n, 1, 'int64')
    .mul(c * h * w)
    .view([n, 1, 1]);
  const channelStart = arange(0, c, 1, 'int64')
    .mul(h * w)
    .view([1, 1, c]);
  const steps = arange(0, size, 1, 'int64');
  const within = steps
    .mul(w)
    .view([size, 1])
    .add(steps.view([1, size])); // P x P
  const index = corner.add(sampleStart).add(channelStart).view([n, t, c, 1, 1]).add(within);
  return images.reshape(-1).gather(0, index.reshape(-1)).view([n, t, c, size, size]);
}

/** Per-channel offsets N x T x C: each channel of each patch shifted by up to ±amount, kept in [0, max]. */
export function jitterChannels(offsets: Tensor, channels: number, amount: number, max: number, generator: Generator): Tensor {
  const [n, t] = offsets.shape;
  const shift = randint(-amount, amount + 1, [n, t, channels], generator);
  return offsets.unsqueeze(2).add(shift).clamp(0, max);
}

/** The last three dims (C x P x P) of each patch. */
const patchDims = (patches: Tensor) => [patches.ndim - 3, patches.ndim - 2, patches.ndim - 1];

/** Each patch shifted and scaled to zero mean and unit std over its own pixels (all channels). */
export function normalizePatches(patches: Tensor, eps = 1e-5): Tensor {
  const dims = patchDims(patches);
  return patches.sub(patches.mean(dims, true)).div(patches.std(dims, 0, true).add(eps));
}

/** Each patch min-max scaled to [0, 1], for pictures of patches normalized on their own. */
export function rescalePatches(patches: Tensor): Tensor {
  const dims = patchDims(patches);
  const lo = patches.amin(dims, true);
  return patches.sub(lo).div(patches.amax(dims, true).sub(lo).clamp(1e-8));
}

/**
 * Replaces the RGB patches of an image (N x T x 3 x P x P, all T together) by their luma with
 * `probability`. Other channel counts pass through.
 */
export function randomGrayscale(patches: Tensor, probability: number, generator: Generator): Tensor {
  const [n, t, c, p, q] = patches.shape;
  if (c !== 3 || probability <= 0) return patches;
  const gray = luminance(patches.flatten(0, 1)).view([n, t, 1, p, q]).expandAs(patches);
  const chosen = rand([n, 1, 1, 1, 1], generator).lt(probability);
  return where(chosen, gray, patches);
}

/**
 * Colour dropping (Doersch et al. 2015): each RGB patch keeps one random channel; the other two
 * become Gaussian noise with `noiseRatio` times that channel's std. Returns the patches and the
 * kept channel of each (N x T).
 */
export function dropColors(patches: Tensor, generator: Generator, noiseRatio = 0.01): { patches: Tensor; kept: Tensor } {
  const [n, t, c, h, w] = patches.shape;
  const kept = randint(0, c, [n, t], generator);
  const keptIndex = kept.view([n, t, 1, 1, 1]);
  const keptChannel = patches.gather(2, keptIndex.expand([n, t, 1, h, w]));
  const noiseStd = keptChannel.std([3, 4], 0, true).mul(noiseRatio);
  const noise = randn([n, t, c, h, w], generator).mul(noiseStd);
  const keep = arange(0, c, 1, 'int64').view([1, 1, c, 1, 1]).eq(keptIndex);
  return { patches: where(keep, patches, noise), kept };
}

/** Unit vector of the green-magenta axis in RGB. */
const GREEN_MAGENTA = [-1, 2, -1].map((v) => v / Math.sqrt(6));

/**
 * Projects every pixel's colour onto the plane orthogonal to the green-magenta axis (Doersch et al.
 * 2015), here in the loader's per-channel normalized space (CIFAR's channel stds differ by < 10%).
 */
export function projectOutGreenMagenta(patches: Tensor): Tensor {
  const axis = tensor(GREEN_MAGENTA).view([1, 1, 3, 1, 1]);
  return patches.sub(patches.mul(axis).sum(2, true).mul(axis));
}

/** The batch's images at `size` x `size` (bilinear), unchanged when already that size. */
export function imagesAt(batch: Batch, size: number): Tensor {
  const [, , h, w] = batch.images.shape;
  return h === size && w === size ? batch.images : nn.functional.interpolate(batch.images, { size, mode: 'bilinear' });
}

/** Trunk features of each patch are average-pooled to this grid, keeping where things are in the patch. */
const POOLED = 2;

/**
 * The head of a siamese patch network: pooled trunk features of each patch through a shared fc
 * (fc6), the T results concatenated in patch order, then an MLP classifier (fc7, fc8).
 */
export class SiameseHead extends nn.Module {
  fc6: nn.Sequential;
  classifier: MlpHead;

  constructor(inChannels: number, patches: number, patchFeatures: number, hidden: number[], classes: number) {
    super();
    this.fc6 = new nn.Sequential(new nn.Linear(inChannels * POOLED * POOLED, patchFeatures), new nn.BatchNorm1d(patchFeatures), nn.ReLU());
    this.classifier = new MlpHead(patches * patchFeatures, hidden, classes);
  }

  /** Trunk feature maps of the patches, N x T x C x H x W, to logits N x classes. */
  forward(features: Tensor): Tensor {
    const pooled = nn.functional.adaptiveAvgPool2d(features.flatten(0, 1), POOLED).flatten(1);
    return this.classifier.forward(this.fc6.forward(pooled).reshape([features.shape[0], -1]));
  }
}

/**
 * A patch task's model: prepare() (the task's own part) gives inputs N x T x C x P x P and class
 * targets; the trunk runs over all N*T patches in one batched pass.
 */
export abstract class SiamesePatchModel extends ClassifierTask<SiameseHead> {
  logits(inputs: Tensor): Tensor {
    const [n, t, c, h, w] = inputs.shape;
    const features = this.modules.backbone.forward(inputs.reshape([n * t, c, h, w]));
    return this.modules.head.forward(features.reshape([n, t, ...features.shape.slice(1)]));
  }
}

/** The patch tasks' paper setting: AlexNet-style siamese trunk, SGD; CIFAR upsampled to 64x64. */
export const PATCH_TASK_DEFAULTS: TaskDefaults = {
  backbone: 'alexnet',
  imageSize: 64,
  epochs: 100,
  batchSize: 128,
  optimizer: { name: 'sgd', lr: 0.01, momentum: 0.9, nesterov: false, weightDecay: 5e-4 },
  schedule: { name: 'multistep', milestones: [30, 60, 80], gamma: 0.1 },
};
