// Batched image augmentations on N x C x H x W tensors, after torchvision's transforms (as used by
// SimCLR-style pipelines) but drawing every sample's parameters for the whole batch at once from
// one Generator, so that a batch is a pure function of the generator's seed.
//
// Every function takes a uint8 (0..255) or float (0..1) NCHW batch and returns float32 in [0, 1].
// Color operations on 1-channel batches: brightness and contrast apply; saturation, hue and
// grayscale are no-ops (a gray image has no chroma).
import * as torch from '@pretext/torch';
import type { Generator, Tensor } from '@pretext/torch';
import { z } from 'zod';

const F = torch.nn.functional;

// ---------------------------------------------------------------------------------------------
// Spec

const probability = z.number().min(0).max(1);
const orderedPair = (item: z.ZodNumber) =>
  z.tuple([item, item]).refine(([low, high]) => low <= high, { message: 'must be [low, high] with low <= high' });

export const augmentSpecSchema = z.strictObject({
  /** Crop a random area fraction `scale` with aspect ratio in `ratio` (log-uniform), resize to the output size. */
  randomResizedCrop: z
    .strictObject({
      scale: orderedPair(z.number().gt(0).max(1)).default([0.08, 1]),
      ratio: orderedPair(z.number().gt(0)).default([3 / 4, 4 / 3]),
    })
    .optional(),
  /** Probability of a horizontal flip. */
  horizontalFlip: probability.optional(),
  /** Factors drawn per sample as torchvision: brightness/contrast/saturation in [max(0, 1 - v), 1 + v], hue shift in [-v, v] turns. */
  colorJitter: z
    .strictObject({
      brightness: z.number().min(0).default(0),
      contrast: z.number().min(0).default(0),
      saturation: z.number().min(0).default(0),
      hue: z.number().min(0).max(0.5).default(0),
      /** Probability that a sample is jittered at all. */
      p: probability.default(1),
    })
    .optional(),
  /** Probability of converting to grayscale (kept as C channels). */
  grayscale: probability.optional(),
  gaussianBlur: z
    .strictObject({
      sigma: orderedPair(z.number().gt(0)).default([0.1, 2]),
      p: probability.default(1),
      /** Odd; default about 10% of the image side, at least 3. */
      kernelSize: z
        .number()
        .int()
        .positive()
        .refine((k) => k % 2 === 1, { message: 'must be odd' })
        .optional(),
    })
    .optional(),
});

/** A JSON-able augmentation spec, e.g. `{ randomResizedCrop: { scale: [0.2, 1] }, horizontalFlip: 0.5 }`. */
export type AugmentSpec = z.input<typeof augmentSpecSchema>;
/** A validated spec with defaults filled in. */
export type ResolvedAugmentSpec = z.output<typeof augmentSpecSchema>;

/** Validates a spec; the error names each bad field, e.g. `augment.colorJitter.hue = 0.7: ...`. */
export function parseAugmentSpec(spec: unknown): ResolvedAugmentSpec {
  const result = augmentSpecSchema.safeParse(spec, { reportInput: true });
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const field = ['augment', ...issue.path.map(String)].join('.');
    const value = 'input' in issue && issue.input !== undefined ? ` = ${JSON.stringify(issue.input)}` : '';
    return `${field}${value}: ${issue.message}`;
  });
  throw new Error(`invalid augment spec:\n${lines.join('\n')}`);
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** uint8 batches become float32 in [0, 1]; float batches pass through. */
export function toFloatImages(images: Tensor): Tensor {
  if (images.ndim !== 4) throw new RangeError(`augment: expected an N x C x H x W batch, got shape [${images.shape}]`);
  return images.dtype === 'uint8' ? images.toDtype('float32').div_(255) : images;
}

/** n uniform draws in [low, high). */
function uniform(generator: Generator, n: number, low: number, high: number): Tensor {
  return torch
    .rand([n], generator)
    .mul(high - low)
    .add(low);
}

/** A bool mask of n samples, each true with probability p. */
function coinFlips(generator: Generator, n: number, p: number): Tensor {
  return torch.rand([n], generator).lt(p);
}

/** Values of a tensor built by `make`, which is freed at once. */
const valuesOf = <T>(make: () => Tensor, read: (t: Tensor) => T): T => torch.tidy(() => read(make()));

/** Per-sample factors uniform in [low, high], or 1 where `applied` is false. */
function factors(generator: Generator, applied: Tensor, low: number, high: number): Tensor {
  const n = applied.shape[0];
  return uniform(generator, n, low, high).sub(1).mul(applied).add(1);
}

const LUMA = [0.299, 0.587, 0.114];

/** ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B as an N x 1 x H x W batch (1-channel input passes through). */
export function luminance(images: Tensor): Tensor {
  const x = toFloatImages(images);
  if (x.shape[1] === 1) return x;
  const [r, g, b] = LUMA.map((weight, channel) => x.select(1, channel).mul(weight));
  return r.add(g).add(b).unsqueeze(1);
}

// ---------------------------------------------------------------------------------------------
// Geometry

/** Crop boxes as [top, left, height, width] per sample, in pixels. */
export type CropBoxes = Int32Array;

/**
 * torchvision's RandomResizedCrop.get_params for n samples: up to 10 tries of a random area in
 * `scale` and log-uniform aspect ratio in `ratio`, then a central crop with the ratio clamped.
 */
export function randomCropBoxes(
  generator: Generator,
  n: number,
  height: number,
  width: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
): CropBoxes {
  const tries = 10;
  const draws = valuesOf(
    () => torch.rand([n, tries, 4], generator, 'float64'),
    (t) => t.toTypedArray() as Float64Array,
  );
  const area = height * width;
  const [logLow, logHigh] = [Math.log(ratio[0]), Math.log(ratio[1])];
  const boxes = new Int32Array(n * 4);
  for (let s = 0; s < n; s++) {
    let box: number[] | undefined;
    for (let t = 0; t < tries && !box; t++) {
      const [uArea, uRatio, uTop, uLeft] = draws.subarray((s * tries + t) * 4, (s * tries + t + 1) * 4);
      const target = area * (scale[0] + uArea * (scale[1] - scale[0]));
      const aspect = Math.exp(logLow + uRatio * (logHigh - logLow));
      const w = Math.round(Math.sqrt(target * aspect));
      const h = Math.round(Math.sqrt(target / aspect));
      if (w > 0 && w <= width && h > 0 && h <= height) {
        box = [Math.floor(uTop * (height - h + 1)), Math.floor(uLeft * (width - w + 1)), h, w];
      }
    }
    if (!box) {
      const inRatio = width / height;
      let [h, w] = [height, width];
      if (inRatio < ratio[0]) h = Math.round(width / ratio[0]);
      else if (inRatio > ratio[1]) w = Math.round(height * ratio[1]);
      box = [Math.floor((height - h) / 2), Math.floor((width - w) / 2), h, w];
    }
    boxes.set(box, s * 4);
  }
  return boxes;
}

/**
 * Crops every sample to its box and resizes it to `size` in one bilinear gridSample (edge pixels
 * repeat at the border, as torchvision's resize). `mirror` (optional, per sample) also flips it
 * horizontally, for free. No antialiasing: strong downscaling aliases.
 */
export function resizedCrops(images: Tensor, boxes: CropBoxes, size: number | [number, number], mirror?: Uint8Array): Tensor {
  const x = toFloatImages(images);
  const [n, , h, w] = x.shape;
  const [outH, outW] = typeof size === 'number' ? [size, size] : size;
  if (boxes.length !== n * 4) throw new RangeError(`resizedCrops: expected ${n} boxes, got ${boxes.length / 4}`);
  // Output pixel centers in gridSample's [-1, 1] (align_corners=false) map linearly into the box:
  // an axis-aligned affine grid, built from a row and a column per sample (cheaper than affineGrid).
  const affine = new Float32Array(n * 4); // x scale, x offset, y scale, y offset
  for (let s = 0; s < n; s++) {
    const [top, left, boxH, boxW] = boxes.subarray(s * 4, s * 4 + 4);
    affine.set([(mirror?.[s] ? -boxW : boxW) / w, (2 * left + boxW) / w - 1, boxH / h, (2 * top + boxH) / h - 1], s * 4);
  }
  const [xScale, xOffset, yScale, yOffset] = torch.fromTypedArray(affine, [n, 4]).unbind(1);
  const centers = (count: number) =>
    torch
      .arange(0, count, 1, 'float32')
      .mul(2 / count)
      .add(1 / count - 1);
  const along = (count: number, scale: Tensor, offset: Tensor, shape: number[]) =>
    centers(count)
      .view([1, count])
      .mul(scale.view([n, 1]))
      .add(offset.view([n, 1]))
      .view(shape)
      .expand([n, outH, outW]);
  const grid = torch.stack([along(outW, xScale, xOffset, [n, 1, outW]), along(outH, yScale, yOffset, [n, outH, 1])], 3);
  return F.gridSample(x, grid, { mode: 'bilinear', paddingMode: 'border', alignCorners: false });
}

export interface RandomResizedCropOptions {
  scale?: readonly [number, number];
  ratio?: readonly [number, number];
  /** Output side (default: the input's height and width). */
  size?: number;
  /** Probability of also mirroring horizontally (folded into the same resampling). */
  flip?: number;
}

/** torchvision's RandomResizedCrop on every sample (defaults scale [0.08, 1], ratio [3/4, 4/3]). */
export function randomResizedCrop(images: Tensor, generator: Generator, options: RandomResizedCropOptions = {}): Tensor {
  const [n, , h, w] = images.shape;
  const boxes = randomCropBoxes(generator, n, h, w, options.scale ?? [0.08, 1], options.ratio ?? [3 / 4, 4 / 3]);
  const mirror = options.flip
    ? valuesOf(
        () => coinFlips(generator, n, options.flip!),
        (t) => t.toTypedArray() as Uint8Array,
      )
    : undefined;
  return resizedCrops(images, boxes, options.size ? [options.size, options.size] : [h, w], mirror);
}

/** Mirrors each sample horizontally with probability p. */
export function horizontalFlip(images: Tensor, generator: Generator, p = 0.5): Tensor {
  const x = toFloatImages(images);
  const mask = coinFlips(generator, x.shape[0], p).view([-1, 1, 1, 1]);
  return torch.where(mask, x.flip(3), x);
}

/** Resizes to size x size: bilinear when enlarging, area averaging (no aliasing) when shrinking. */
export function resize(images: Tensor, size: number): Tensor {
  const x = toFloatImages(images);
  const [, , h, w] = x.shape;
  if (h === size && w === size) return x;
  return h >= size && w >= size ? F.adaptiveAvgPool2d(x, size) : F.interpolate(x, { size, mode: 'bilinear' });
}

// ---------------------------------------------------------------------------------------------
// Color
//
// Every color adjustment is a per-sample affine map of the channels, x -> M x + b (brightness and
// saturation scale and blend, contrast blends with the mean luma, hue rotates the chroma plane,
// grayscale projects on luma). A chain of them is composed into one map and applied with one batched
// matmul and one clamp to [0, 1]; unlike torchvision, values are not clamped between the steps.

/** Per-sample affine color map: `matrix` N x C x C, `offset` N x C x 1. */
export interface ColorTransform {
  matrix: Tensor;
  offset: Tensor;
}

/** Builds one step's map from the per-sample channel means (N x C x 1) of the image it applies to. */
export type ColorStep = (channelMeans: Tensor) => ColorTransform;

const identity = (channels: number): Tensor => torch.eye(channels, channels).view([1, channels, channels]);
const matrix3 = (values: number[]): Tensor => torch.tensor(values).view([1, 3, 3]);
/** A constant matrix times a per-sample factor: N x C x C. */
const scaled = (matrix: Tensor, factor: Tensor): Tensor => matrix.mul(factor.view([-1, 1, 1]));
/** 1 w^T: every channel becomes the luma. */
const LUMA_PROJECTION = [LUMA, LUMA, LUMA].flat();
/** A linear step (no offset). */
const linear = (means: Tensor, matrix: Tensor): ColorTransform => ({ matrix, offset: torch.zerosLike(means) });
const asVector = (factor: Tensor | number, n: number): Tensor => (typeof factor === 'number' ? torch.full([n], factor) : factor);

/** Composes the steps in order (each sees the means of the previous steps' output, unclamped). */
export function composeColorSteps(images: Tensor, steps: readonly ColorStep[]): ColorTransform {
  const x = toFloatImages(images);
  const [n, c] = x.shape;
  const means = x.mean([2, 3]).view([n, c, 1]);
  let total: ColorTransform = { matrix: identity(c).expand([n, c, c]), offset: torch.zeros([n, c, 1]) };
  for (const step of steps) {
    const { matrix, offset } = step(total.matrix.bmm(means).add(total.offset));
    total = { matrix: matrix.bmm(total.matrix), offset: matrix.bmm(total.offset).add(offset) };
  }
  return total;
}

/** x -> clamp(M x + b, 0, 1) per sample. */
export function applyColorTransform(images: Tensor, transform: ColorTransform): Tensor {
  const x = toFloatImages(images);
  const [n, c, h, w] = x.shape;
  return transform.matrix
    .bmm(x.reshape([n, c, h * w]))
    .add_(transform.offset)
    .clamp_(0, 1)
    .view([n, c, h, w]);
}

/** Applies a chain of color steps as one map (an empty chain returns the float batch as is). */
export function applyColorSteps(images: Tensor, steps: readonly ColorStep[]): Tensor {
  const x = toFloatImages(images);
  return steps.length === 0 ? x : applyColorTransform(x, composeColorSteps(x, steps));
}

/** x -> f x. */
export function brightnessStep(factor: Tensor): ColorStep {
  return (means) => linear(means, scaled(identity(means.shape[1]), factor));
}

/** x -> f x + (1 - f) mean luma. */
export function contrastStep(factor: Tensor): ColorStep {
  return (means) => {
    const [n, c] = means.shape;
    const lumaMean = c === 1 ? means : torch.tensor(LUMA).view([1, 1, 3]).matmul(means);
    return { matrix: scaled(identity(c), factor), offset: scaled(lumaMean, factor.rsub(1)).expand([n, c, 1]) };
  };
}

/** x -> f x + (1 - f) luma (3 channels only). */
export function saturationStep(factor: Tensor): ColorStep {
  return (means) => linear(means, scaled(identity(3), factor).add(scaled(matrix3(LUMA_PROJECTION), factor.rsub(1))));
}

// Hue: a rotation of YIQ's chroma plane (I, Q) by 2 pi shift, which keeps luma Y. Close to, but not
// the same as, torchvision's HSV hue shift (no HSV round trip, no hexcone distortion). The map is
// RGB<-YIQ * R(angle) * YIQ<-RGB = A + cos(angle) B + sin(angle) C.
const RGB_TO_YIQ = [LUMA, [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]];

type Mat3 = number[][];
const matmul3 = (a: Mat3, b: Mat3): Mat3 => a.map((row) => [0, 1, 2].map((j) => row.reduce((s, v, k) => s + v * b[k][j], 0)));
function invert3(m: Mat3): Mat3 {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  const adjugate = [
    [e * i - f * h, c * h - b * i, b * f - c * e],
    [f * g - d * i, a * i - c * g, c * d - a * f],
    [d * h - e * g, b * g - a * h, a * e - b * d],
  ];
  return adjugate.map((row) => row.map((v) => v / det));
}
const YIQ_TO_RGB = invert3(RGB_TO_YIQ);
const inYiq = (m: Mat3): number[] => matmul3(matmul3(YIQ_TO_RGB, m), RGB_TO_YIQ).flat();
const HUE_KEEP = inYiq([
  [1, 0, 0],
  [0, 0, 0],
  [0, 0, 0],
]);
const HUE_COS = inYiq([
  [0, 0, 0],
  [0, 1, 0],
  [0, 0, 1],
]);
const HUE_SIN = inYiq([
  [0, 0, 0],
  [0, 0, -1],
  [0, 1, 0],
]);

/** Rotates the hue by `shift` turns (3 channels only). */
export function hueStep(shift: Tensor): ColorStep {
  return (means) => {
    const angle = shift.mul(2 * Math.PI);
    return linear(
      means,
      scaled(matrix3(HUE_COS), angle.cos())
        .add(scaled(matrix3(HUE_SIN), angle.sin()))
        .add(matrix3(HUE_KEEP)),
    );
  };
}

/** Every channel becomes the luma where `mask` (N bools) is set (3 channels only). */
export function grayscaleStep(mask: Tensor): ColorStep {
  return (means) => linear(means, torch.where(mask.view([-1, 1, 1]), matrix3(LUMA_PROJECTION), identity(3)));
}

const colorOnly = (channels: number, step: ColorStep): ColorStep[] => (channels === 3 ? [step] : []);

/** Multiplies each sample by its factor (a number or an N-vector), clamped to [0, 1]. */
export function adjustBrightness(images: Tensor, factor: Tensor | number): Tensor {
  return applyColorSteps(images, [brightnessStep(asVector(factor, images.shape[0]))]);
}

/** Blends each sample with its mean luma: f x + (1 - f) mean. */
export function adjustContrast(images: Tensor, factor: Tensor | number): Tensor {
  return applyColorSteps(images, [contrastStep(asVector(factor, images.shape[0]))]);
}

/** Blends each sample with its luma: f x + (1 - f) gray. No-op on 1-channel batches. */
export function adjustSaturation(images: Tensor, factor: Tensor | number): Tensor {
  return applyColorSteps(images, colorOnly(images.shape[1], saturationStep(asVector(factor, images.shape[0]))));
}

/** Rotates each sample's hue by `shift` turns (a number or an N-vector in [-0.5, 0.5]). No-op on 1-channel batches. */
export function adjustHue(images: Tensor, shift: Tensor | number): Tensor {
  return applyColorSteps(images, colorOnly(images.shape[1], hueStep(asVector(shift, images.shape[0]))));
}

export interface ColorJitterOptions {
  brightness?: number;
  contrast?: number;
  saturation?: number;
  hue?: number;
  /** Probability that a sample is jittered (default 1). */
  p?: number;
}

/**
 * torchvision's ColorJitter as color steps: per-sample factors (1, or hue 0, for samples not
 * jittered), in one random order per batch (torchvision draws it per image). Adjustments of
 * strength 0, and saturation and hue on 1-channel batches, are left out.
 */
export function colorJitterSteps(generator: Generator, n: number, channels: number, options: ColorJitterOptions): ColorStep[] {
  const applied = coinFlips(generator, n, options.p ?? 1);
  const spread = (v: number) => factors(generator, applied, Math.max(0, 1 - v), 1 + v);
  const { brightness = 0, contrast = 0, saturation = 0, hue = 0 } = options;
  const steps = [
    brightness ? brightnessStep(spread(brightness)) : undefined,
    contrast ? contrastStep(spread(contrast)) : undefined,
    saturation && channels === 3 ? saturationStep(spread(saturation)) : undefined,
    hue && channels === 3 ? hueStep(factors(generator, applied, 1 - hue, 1 + hue).sub(1)) : undefined,
  ];
  const order = valuesOf(
    () => torch.randperm(4, generator),
    (t) => t.toArray(),
  );
  return order.flatMap((i) => steps[i] ?? []);
}

/** torchvision's ColorJitter on every sample (see colorJitterSteps), clamped once at the end. */
export function colorJitter(images: Tensor, generator: Generator, options: ColorJitterOptions): Tensor {
  const [n, c] = images.shape;
  return applyColorSteps(images, colorJitterSteps(generator, n, c, options));
}

/** The grayscale step for a random subset (probability p) of 3-channel samples; none for 1-channel ones. */
export function randomGrayscaleSteps(generator: Generator, n: number, channels: number, p: number): ColorStep[] {
  return colorOnly(channels, grayscaleStep(coinFlips(generator, n, p)));
}

/** Replaces each sample by its luma (in every channel) with probability p. No-op on 1-channel batches. */
export function randomGrayscale(images: Tensor, generator: Generator, p = 0.1): Tensor {
  const [n, c] = images.shape;
  return applyColorSteps(images, randomGrayscaleSteps(generator, n, c, p));
}

// ---------------------------------------------------------------------------------------------
// Blur

export interface GaussianBlurOptions {
  /** Range of the per-sample sigma, in pixels (default [0.1, 2]). */
  sigma?: readonly [number, number];
  /** Probability that a sample is blurred (default 1). */
  p?: number;
  /** Odd kernel side (default about 10% of the image side, at least 3). */
  kernelSize?: number;
}

/** Odd, about 10% of the shorter side, at least 3 (SimCLR's choice). */
export function defaultBlurKernelSize(height: number, width: number): number {
  return Math.max(3, 2 * Math.floor((0.1 * Math.min(height, width)) / 2) + 1);
}

/**
 * Gaussian blur with a per-sample sigma: a separable depthwise conv2d (one group per sample and
 * channel) over the reflection-padded batch. Samples that are not blurred get a delta kernel.
 */
export function gaussianBlur(images: Tensor, generator: Generator, options: GaussianBlurOptions = {}): Tensor {
  const x = toFloatImages(images);
  const [n, c, h, w] = x.shape;
  const k = options.kernelSize ?? defaultBlurKernelSize(h, w);
  const radius = (k - 1) / 2;
  if (!Number.isInteger(radius) || radius < 0) throw new RangeError(`gaussianBlur: 'kernelSize' must be odd and positive, got ${k}`);
  if (radius >= h || radius >= w) throw new RangeError(`gaussianBlur: 'kernelSize' ${k} is too large for ${h} x ${w} images`);
  const [low, high] = options.sigma ?? [0.1, 2];
  const sigma = uniform(generator, n, low, high).view([n, 1]);
  const applied = coinFlips(generator, n, options.p ?? 1).view([n, 1]);
  const offsets = torch.arange(-radius, radius + 1, 1, 'float32').view([1, k]);
  const gauss = offsets.square().div(sigma.square().mul(-2)).exp();
  const delta = offsets.eq(0).float();
  const kernel = torch.where(applied, gauss.div(gauss.sum(1, true)), delta).repeatInterleave(c, 0);
  const padded = F.pad(x.reshape([1, n * c, h, w]), [radius, radius, radius, radius], { mode: 'reflect' });
  const rows = F.conv2d(padded, kernel.view([n * c, 1, 1, k]), null, { groups: n * c });
  return F.conv2d(rows, kernel.view([n * c, 1, k, 1]), null, { groups: n * c }).view([n, c, h, w]);
}

// ---------------------------------------------------------------------------------------------
// Pipeline

/**
 * Applies a spec in SimCLR's order: random resized crop (to `outputSize`, default the input size;
 * without a crop the batch is resized to it), horizontal flip, color jitter, grayscale, blur.
 * When both crop and flip are on, the flip is folded into the crop's resampling; jitter and
 * grayscale are composed into one color map.
 */
export function augmentBatch(images: Tensor, spec: ResolvedAugmentSpec, generator: Generator, outputSize?: number): Tensor {
  let x = toFloatImages(images);
  const size = outputSize ?? x.shape[2];
  if (spec.randomResizedCrop) {
    x = randomResizedCrop(x, generator, { ...spec.randomResizedCrop, size, flip: spec.horizontalFlip });
  } else {
    x = resize(x, size);
    if (spec.horizontalFlip) x = horizontalFlip(x, generator, spec.horizontalFlip);
  }
  const [n, c] = x.shape;
  x = applyColorSteps(x, [
    ...(spec.colorJitter ? colorJitterSteps(generator, n, c, spec.colorJitter) : []),
    ...(spec.grayscale ? randomGrayscaleSteps(generator, n, c, spec.grayscale) : []),
  ]);
  if (spec.gaussianBlur) x = gaussianBlur(x, generator, spec.gaussianBlur);
  return x;
}

/** (x - mean) / std per channel; `inPlace` overwrites a float input (which must not be a broadcast view). */
export function normalizeImages(images: Tensor, mean: readonly number[], std: readonly number[], inPlace = false): Tensor {
  const x = toFloatImages(images);
  const c = x.shape[1];
  if (mean.length !== c || std.length !== c)
    throw new RangeError(`normalize: need ${c} means and stds, got ${mean.length} and ${std.length}`);
  const scale = torch.tensor(std.map((s) => 1 / s)).view([1, c, 1, 1]);
  const shift = torch.tensor(mean.map((m, i) => -m / std[i])).view([1, c, 1, 1]);
  return inPlace ? x.mul_(scale).add_(shift) : x.mul(scale).add(shift);
}

/** The inverse of normalizeImages: normalized images back to [0, 1] display units (clamped unless `clamp` is false). */
export function denormalizeImages(images: Tensor, mean: readonly number[], std: readonly number[], clamp = true): Tensor {
  const c = images.shape[1];
  const x = images.mul(torch.tensor([...std]).view([1, c, 1, 1])).add(torch.tensor([...mean]).view([1, c, 1, 1]));
  return clamp ? x.clamp(0, 1) : x;
}

/** How a loader turns a batch of stored pixels into network input. */
export interface ImageRecipe {
  height: number;
  width: number;
  /** Channels in the store. */
  storeChannels: 1 | 3;
  /** Channels of the output: equal to storeChannels, or 3 to repeat gray into RGB. */
  channels: 1 | 3;
  outputSize: number;
  augment?: ResolvedAugmentSpec;
  /** Per output channel; omitted for no normalization. */
  normalize?: { mean: number[]; std: number[] };
}

/**
 * Stored NHWC pixels of n samples to a contiguous float32 n x C x S x S batch: to [0, 1], gray to RGB
 * if asked, augmented with `generator`, normalized. Intermediates are freed.
 */
export function prepareImages(pixels: Uint8Array, n: number, recipe: ImageRecipe, generator: Generator): Tensor {
  return torch.tidy(() =>
    torch.noGrad(() => {
      const { height, width, storeChannels, channels } = recipe;
      let x = toFloatImages(torch.fromTypedArray(pixels, [n, height, width, storeChannels]).permute([0, 3, 1, 2]));
      if (channels !== storeChannels) x = x.expand([n, channels, height, width]);
      x = recipe.augment ? augmentBatch(x, recipe.augment, generator, recipe.outputSize) : resize(x, recipe.outputSize);
      x = x.contiguous();
      return recipe.normalize ? normalizeImages(x, recipe.normalize.mean, recipe.normalize.std, true) : x;
    }),
  );
}
