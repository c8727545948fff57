// Colorful Image Colorization (Zhang, Isola & Efros, ECCV 2016): from the lightness L of an image,
// predict its ab colour channels. The paper's loss classifies each pixel's ab into Q quantized
// in-gamut bins with soft-encoded targets and class rebalancing, and decodes the annealed mean;
// the regression baseline predicts ab directly with L2. Encoder: any registered backbone on the
// L channel; decoder: transposed convolutions back to the input size.
import {
  cat,
  fromTypedArray,
  full,
  Generator,
  keep,
  linspace,
  nn,
  noGrad,
  randperm,
  stack,
  tidy,
  zeros,
  zerosLike,
  type Tensor,
} from '@pretext/torch';
import { z } from 'zod';
import { luminance, normalizeImages, type Batch } from '../data/loader.js';
import { sampleBytes, sampleImage, type SampleStore } from '../data/store.js';
import type { Backbone } from '../models/backbone.js';
import { UpsamplingDecoder } from '../models/decoder.js';
import { KeptNormalization, psnrAnswers } from './generative.js';
import { psnr, psnrPerSample } from './image-metrics.js';
import { labToRgb, rgbToLab } from './lab.js';
import { imagesAt } from './patches.js';
import type { EpochContext, ImageAnswer, OptimizerPhase, PretextBatch, PretextTask, StepResult, TaskInstance, TaskState } from './task.js';

const options = z
  .object({
    /** 'classification' over the quantized ab bins (the paper's), or 'regression' of ab. */
    loss: z.enum(['classification', 'regression']).default('classification'),
    /** The regression loss: 'l2' (the paper's regression baseline) or 'smoothL1'. */
    regressionLoss: z.enum(['l2', 'smoothL1']).default('l2'),
    /** Soft encoding: each pixel's ab spread over its nearest bins with Gaussian weights (paper: 5 bins, sigma 5). */
    neighbours: z.number().int().min(1).default(5),
    sigma: z.number().positive().default(5),
    /** Class rebalancing by the smoothed empirical ab prior mixed with uniform (paper: lambda 0.5, smoothing sigma 5). */
    rebalance: z.boolean().default(true),
    lambda: z.number().min(0).max(1).default(0.5),
    priorSigma: z.number().positive().default(5),
    /** Images of the training store the ab prior and mean are measured on (a seeded sample). */
    priorSamples: z.number().int().positive().default(2000),
    /** Annealed-mean temperature of the decoding (paper: 0.38; 1 is the mean, towards 0 the mode). */
    temperature: z.number().positive().default(0.38),
    /** Channels of the decoder's first upsampling stage. */
    decoderWidth: z.number().int().positive().default(128),
  })
  .strict();

type ColorizationOptions = z.infer<typeof options>;

/** Side of the ab quantization grid (paper: 10). */
export const GRID = 10;
/** Regression outputs are ab / AB_SCALE (ab of sRGB colours lie within about ±110). */
export const AB_SCALE = 110;

/** The encoder's input from L in [0, 100]: centred and scaled to [-1, 1]. */
export const lightnessInput = (lightness: Tensor): Tensor => lightness.sub(50).div(50);

/** Bins by grid side, computed once per process (about half a second each). */
const binCache = new Map<number, Tensor>();

/**
 * The ab bin centres Q x 2 (float32, a-major order): every point of the ab grid that is a corner of
 * a grid square holding the ab of some sRGB colour, i.e. every bin needed to interpolate an in-gamut
 * colour from its surrounding bins. The colours are the six faces of the RGB cube at 256 levels: a
 * solid's projection on the ab plane is its surface's. This gives 309 bins at grid 10, all among
 * the paper's 313 (which adds (40, 90), (100, -90), (100, -10) and (100, 0)). Shared: do not dispose.
 */
export function abBins(grid = GRID): Tensor {
  const cached = binCache.get(grid);
  if (cached) return cached;
  const bins = tidy(() => {
    const levels = linspace(0, 1, 256, 'float64');
    const u = levels.view([256, 1]).expand([256, 256]).reshape(-1);
    const v = levels.view([1, 256]).expand([256, 256]).reshape(-1);
    const faces = [0, 1, 2].flatMap((axis) =>
      [0, 1].map((value) => {
        const free = [u, v];
        return stack([...free.slice(0, axis), full(u.shape, value, 'float64'), ...free.slice(axis)], 1);
      }),
    );
    const ab = rgbToLab(cat(faces)).narrow(1, 1, 2);
    // Cells span ab in [-128, 128]; `reach` cells either side of 0 leave room for the +1 corners.
    const reach = Math.ceil(130 / grid) + 1;
    const side = 2 * reach + 1;
    const cell = ab.div(grid).floor().toDtype('int64').add(reach);
    const corners = [0, 1].flatMap((da) => [0, 1].map((db) => cell.select(1, 0).add(da).mul(side).add(cell.select(1, 1).add(db))));
    const present = cat(corners)
      .bincount(null, side * side)
      .gt(0)
      .nonzero()
      .view(-1);
    const a = present.div(side, 'floor');
    return stack([a, present.sub(a.mul(side))], 1)
      .sub(reach)
      .mul(grid)
      .float();
  });
  binCache.set(grid, keep(bins));
  return bins;
}

/** Squared distances P x Q from points P x 2 to bin centres Q x 2. */
function squaredDistances(points: Tensor, bins: Tensor): Tensor {
  const cross = points.matmul(bins.t()).mul(-2);
  return cross.add(points.square().sum(1, true)).add(bins.square().sum(1).unsqueeze(0)).clamp(0);
}

/** Index of the nearest bin of each of P x 2 ab points (int64 P). */
export function nearestBin(ab: Tensor, bins: Tensor): Tensor {
  return squaredDistances(ab, bins).argmin(1);
}

/**
 * Soft encoding of P x 2 ab points: the `neighbours` nearest bins (nearest first) and Gaussian
 * weights exp(-d^2 / 2 sigma^2) normalized to sum to 1 per point.
 */
export function softEncode(ab: Tensor, bins: Tensor, neighbours = 5, sigma = 5): { index: Tensor; weights: Tensor } {
  const [distances, index] = squaredDistances(ab, bins).topk(neighbours, 1, false, true);
  return { index, weights: nn.functional.softmax(distances.div(-2 * sigma * sigma), 1) };
}

/**
 * The paper's class rebalancing weights (eq. 3-4) from a prior over the Q bins: the prior smoothed
 * with a Gaussian of `sigma` over the ab plane, mixed with uniform by `lambda`, inverted and
 * normalized so that its expectation under the smoothed prior is 1.
 */
export function rebalancingWeights(prior: Tensor, bins: Tensor, lambda = 0.5, sigma = 5): Tensor {
  const kernel = squaredDistances(bins, bins)
    .div(-2 * sigma * sigma)
    .exp();
  const smoothed = kernel.matmul(prior.div(prior.sum()));
  const p = smoothed.div(smoothed.sum());
  const weights = p
    .mul(1 - lambda)
    .add(lambda / bins.shape[0])
    .reciprocal();
  return weights.div(p.mul(weights).sum());
}

/**
 * The annealed mean (paper eq. 5) of per-pixel bin logits N x Q x H x W: the mean ab of the
 * distribution softmax(logits / T), N x 2 x H x W. T = 1 is the mean, T -> 0 the mode.
 */
export function annealedMean(logits: Tensor, bins: Tensor, temperature: number): Tensor {
  // The sum over bins as a 1x1 convolution: no relayout of the N x Q x H x W probabilities.
  const [q] = bins.shape;
  return nn.functional.conv2d(nn.functional.softmax(logits.div(temperature), 1), bins.t().reshape([2, q, 1, 1]));
}

/**
 * The paper's loss (eq. 2): per pixel the cross-entropy of bin logits N x Q x H x W against the
 * soft target (bins `index` N x K x H x W with `weights`), times the pixel's rebalancing weight
 * (N x H x W, optional), averaged over pixels.
 */
export function softCrossEntropy(logits: Tensor, index: Tensor, weights: Tensor, pixelWeights?: Tensor): Tensor {
  const perPixel = nn.functional.logSoftmax(logits, 1).gather(1, index).mul(weights).sum(1).neg();
  return (pixelWeights ? perPixel.mul(pixelWeights) : perPixel).mean();
}

/** Mean per-pixel Euclidean distance between N x 2 x H x W ab maps (the paper's ab L2 error). */
export const abDistance = (predicted: Tensor, truth: Tensor): Tensor => predicted.sub(truth).square().sum(1).sqrt().mean();

/** RGB in [0, 1] of lightness N x 1 x H x W and ab N x 2 x H x W (ab broadcasts). */
export const recolor = (lightness: Tensor, ab: Tensor): Tensor => {
  const [n, , h, w] = lightness.shape;
  return labToRgb(cat([lightness, ab.expand([n, 2, h, w])], 1));
};

/**
 * The baseline that predicts the data's mean ab (`meanAb`, 2) at every pixel: its ab L2 error and
 * the PSNR of the recoloured RGB against the truth, on a batch's Lab N x 3 x H x W and RGB.
 */
export function meanAbBaseline(lab: Tensor, rgb: Tensor, meanAb: Tensor): { abL2: Tensor; psnr: Tensor } {
  const ab = meanAb.view([1, 2, 1, 1]);
  const truth = lab.narrow(1, 1, 2);
  return { abL2: abDistance(ab.expandAs(truth), truth), psnr: psnr(recolor(lab.narrow(1, 0, 1), ab), rgb) };
}

/** uint8 NHWC pixels of some store samples as float RGB N x 3 x H x W in [0, 1] (gray repeated). */
function storeRgb(store: SampleStore, indices: number[]): Tensor {
  const bytes = new Uint8Array(indices.length * sampleBytes(store));
  indices.forEach((index, k) => bytes.set(sampleImage(store, index), k * sampleBytes(store)));
  const images = fromTypedArray(bytes, [indices.length, store.height, store.width, store.channels]).permute([0, 3, 1, 2]).float().div(255);
  return images.expand([indices.length, 3, store.height, store.width]);
}

export interface AbStatistics {
  /** Fraction of pixels whose nearest bin is each bin (Q). */
  prior: Tensor;
  /** Mean ab over the pixels (2). */
  meanAb: Tensor;
  /** The mean-ab baseline on the same images: mean ab L2 error and mean per-image PSNR. */
  baseline: { abL2: number; psnr: number };
  images: number;
}

/**
 * The ab prior, mean ab and the mean-ab baseline over a seeded sample of `samples` store images
 * (all when fewer), in chunks of `chunk` images.
 */
export function abStatistics(store: SampleStore, bins: Tensor, samples: number, seed = 0, chunk = 200): AbStatistics {
  const count = Math.min(samples, store.n);
  const chosen = tidy(() => randperm(store.n, new Generator(seed)).narrow(0, 0, count).toArray());
  const chunks = Array.from({ length: Math.ceil(count / chunk) }, (_, k) => chosen.slice(k * chunk, (k + 1) * chunk));
  const labOf = (indices: number[]) => {
    const rgb = storeRgb(store, indices);
    return { rgb, lab: rgbToLab(rgb) };
  };
  const abPixels = (lab: Tensor) => lab.narrow(1, 1, 2).movedim(1, -1).reshape([-1, 2]);
  return tidy(() => {
    const counts = zeros([bins.shape[0]], 'float64');
    const abSum = zeros([2], 'float64');
    for (const indices of chunks) {
      tidy(() => {
        const ab = abPixels(labOf(indices).lab);
        counts.add_(nearestBin(ab, bins).bincount(null, bins.shape[0]).double());
        abSum.add_(ab.double().sum(0));
      });
    }
    const pixels = counts.sum();
    const meanAb = abSum.div(pixels).float();
    let abL2 = 0;
    let psnrSum = 0;
    for (const indices of chunks) {
      tidy(() => {
        const { rgb, lab } = labOf(indices);
        const baseline = meanAbBaseline(lab, rgb, meanAb);
        abL2 += baseline.abL2.item() * indices.length;
        psnrSum += baseline.psnr.item() * indices.length;
      });
    }
    return {
      prior: keep(counts.div(pixels).float()),
      meanAb: keep(meanAb),
      baseline: { abL2: abL2 / count, psnr: psnrSum / count },
      images: count,
    };
  });
}

class ColorizationModel implements TaskInstance {
  readonly modules: { backbone: Backbone; decoder: UpsamplingDecoder };
  private readonly bins: Tensor;
  private prior: Tensor;
  private weights: Tensor;
  private meanAb: Tensor;
  /** The mean-ab baseline on the prior's sample, logged when training starts. */
  private baseline?: AbStatistics['baseline'] & { images: number };

  constructor(
    backbone: Backbone,
    private readonly o: ColorizationOptions,
    private readonly channels: number,
    private readonly imageSize: number,
    private readonly normalization: KeptNormalization,
    store?: SampleStore,
  ) {
    if (backbone.inChannels !== 1)
      throw new Error(`colorization: the backbone takes the L channel only, but it takes ${backbone.inChannels} channels`);
    this.bins = abBins();
    const q = this.bins.shape[0];
    // A dry forward in eval mode (BatchNorm statistics untouched) measures the encoder's output.
    const wasTraining = backbone.training;
    backbone.eval();
    const [, features, fromSize] = noGrad(() => tidy(() => backbone.forward(zeros([1, 1, imageSize, imageSize])).shape));
    backbone.train(wasTraining);
    const outChannels = o.loss === 'classification' ? q : 2;
    this.modules = {
      backbone,
      // A 1x1 projection classifies each pixel from its own features, as the paper's last layer.
      decoder: new UpsamplingDecoder({
        inChannels: features,
        outChannels,
        fromSize,
        toSize: imageSize,
        width: o.decoderWidth,
        projectionKernel: 1,
      }),
    };
    if (store) {
      const stats = abStatistics(store, this.bins, o.priorSamples);
      this.prior = stats.prior;
      this.meanAb = stats.meanAb;
      this.baseline = { ...stats.baseline, images: stats.images };
    } else {
      this.prior = keep(full([q], 1 / q));
      this.meanAb = keep(zeros([2]));
    }
    this.weights = keep(tidy(() => rebalancingWeights(this.prior, this.bins, o.lambda, o.priorSigma)));
  }

  phases(): OptimizerPhase[] {
    return [{ name: 'main', parameters: [...this.modules.backbone.parameters(), ...this.modules.decoder.parameters()] }];
  }

  onEpochStart(context: EpochContext): void {
    if (context.epoch !== 0 || context.resumed || !this.baseline) return;
    const { abL2, psnr: db, images } = this.baseline;
    context.log(
      `colorization: ${this.bins.shape[0]} ab bins; mean-ab baseline on ${images} training images: abL2 ${abL2.toFixed(2)}, PSNR ${db.toFixed(2)} dB`,
    );
  }

  /** Loader images as RGB in [0, 1] (gray repeated into RGB). */
  private toRgb(images: Tensor): Tensor {
    const display = this.normalization.toDisplay(images);
    return display.shape[1] === 1 ? display.expand([display.shape[0], 3, ...display.shape.slice(2)]) : display;
  }

  /** RGB in [0, 1] back to loader images (normalized, the data's channels). */
  private fromRgb(rgb: Tensor): Tensor {
    const { mean, std } = this.normalization.value;
    return normalizeImages(this.channels === 1 ? luminance(rgb) : rgb, mean, std);
  }

  encoderInput(images: Tensor): Tensor {
    return lightnessInput(rgbToLab(this.toRgb(images)).narrow(1, 0, 1));
  }

  prepare(batch: Batch): PretextBatch {
    const rgb = this.toRgb(imagesAt(batch, this.imageSize));
    const lab = rgbToLab(rgb);
    const lightness = lab.narrow(1, 0, 1);
    const ab = lab.narrow(1, 1, 2);
    const extra: Record<string, Tensor> = { lightness, rgb };
    if (this.o.loss === 'classification') {
      // Soft targets per pixel, laid out N x K x H x W like the logits.
      const [n, , h, w] = ab.shape;
      const { index, weights } = softEncode(ab.movedim(1, -1).reshape([-1, 2]), this.bins, this.o.neighbours, this.o.sigma);
      const layout = (t: Tensor) => t.view([n, h, w, -1]).movedim(-1, 1);
      extra.binIndex = layout(index);
      extra.binWeights = layout(weights);
    }
    return { inputs: lightnessInput(lightness), targets: ab, extra };
  }

  /** Decoder outputs: bin logits N x Q x H x W, or ab / AB_SCALE N x 2 x H x W. */
  private outputs(inputs: Tensor): Tensor {
    return this.modules.decoder.forward(this.modules.backbone.forward(inputs));
  }

  /** Predicted ab N x 2 x H x W from decoder outputs. */
  private decode(outputs: Tensor): Tensor {
    return this.o.loss === 'classification' ? annealedMean(outputs, this.bins, this.o.temperature) : outputs.mul(AB_SCALE);
  }

  step(batch: PretextBatch): StepResult {
    const outputs = this.outputs(batch.inputs);
    const { lightness, rgb } = batch.extra!;
    const metrics: Record<string, Tensor> = {};
    let loss: Tensor;
    if (this.o.loss === 'classification') {
      const { binIndex, binWeights } = batch.extra!;
      const nearest = binIndex.narrow(1, 0, 1);
      loss = softCrossEntropy(outputs, binIndex, binWeights, this.o.rebalance ? this.weights.index(nearest.squeeze(1)) : undefined);
      // The nearest bin has the top logit (an argmax without its slower index search).
      metrics.binAcc = noGrad(() => outputs.gather(1, nearest).ge(outputs.amax(1, true)).float().mean());
    } else {
      const target = batch.targets.div(AB_SCALE);
      loss = this.o.regressionLoss === 'l2' ? nn.functional.mseLoss(outputs, target) : nn.functional.smoothL1Loss(outputs, target);
    }
    noGrad(() => {
      const ab = this.decode(outputs.detach());
      const lab = cat([lightness, batch.targets], 1);
      const baseline = meanAbBaseline(lab, rgb, this.meanAb);
      Object.assign(metrics, {
        abL2: abDistance(ab, batch.targets),
        psnr: psnr(recolor(lightness, ab), rgb),
        baselineAbL2: baseline.abL2,
        baselinePsnr: baseline.psnr,
      });
    });
    return { loss, metrics };
  }

  answers(batch: PretextBatch): ImageAnswer[] {
    const recolored = recolor(batch.extra!.lightness, this.decode(this.outputs(batch.inputs)));
    return psnrAnswers(this.fromRgb(recolored), psnrPerSample(recolored, batch.extra!.rgb));
  }

  state(): TaskState {
    return { tensors: { abPrior: this.prior, meanAb: this.meanAb }, json: this.normalization.state().json };
  }

  loadState(state: TaskState | undefined): void {
    if (!state) return;
    this.normalization.load(state);
    const { abPrior, meanAb } = state.tensors ?? {};
    if (abPrior) {
      if (abPrior.shape[0] !== this.bins.shape[0])
        throw new Error(`colorization: the saved ab prior has ${abPrior.shape[0]} bins, this task ${this.bins.shape[0]}`);
      this.prior.dispose();
      this.weights.dispose();
      this.prior = keep(abPrior.float().clone());
      this.weights = keep(tidy(() => rebalancingWeights(this.prior, this.bins, this.o.lambda, this.o.priorSigma)));
    }
    if (meanAb) {
      this.meanAb.dispose();
      this.meanAb = keep(meanAb.float().clone());
    }
  }
}

/** Gray images N x C x H x W as RGB for a picture row. */
const asRgb = (images: Tensor) => (images.shape[1] === 1 ? images.expand([images.shape[0], 3, ...images.shape.slice(2)]) : images);

export const colorizationTask: PretextTask<typeof options> = {
  name: 'colorization',
  description: 'Colorization: predict the ab colour channels of an image from its lightness L (per pixel, over 309 quantized ab bins)',
  paper: 'Zhang, Isola & Efros, Colorful Image Colorization, ECCV 2016',
  options,
  // NIN-4 as RotNet's CIFAR net (its output, 4 x 4 at 32 px, is upsampled 8x); Adam as the paper, at a
  // rate for short runs (the paper: 3e-5 over 450k ImageNet iterations).
  defaults: {
    backbone: 'nin4',
    epochs: 30,
    batchSize: 64,
    optimizer: { name: 'adam', lr: 1e-3, betas: [0.9, 0.99], weightDecay: 0 },
    schedule: { name: 'cosine' },
  },
  selection: { metric: 'psnr', mode: 'max' },
  inputChannels: () => 1,
  create: (backbone, o, context) =>
    new ColorizationModel(
      backbone,
      o,
      context.inChannels,
      context.imageSize,
      new KeptNormalization(context.inChannels, context.store),
      context.store,
    ),
  picture(batch, answers, display) {
    const { lightness, rgb } = batch.extra!;
    const gray = recolor(lightness, zerosLike(batch.targets));
    const images = answers?.length ? asRgb(display(stack((answers as ImageAnswer[]).map((a) => a.image)))) : undefined;
    const columns = images ? [gray, images, rgb] : [gray, rgb];
    const captions = Array.from({ length: gray.shape[0] }, (_, i) => {
      const score = (answers?.[i] as ImageAnswer | undefined)?.score;
      return images ? ['L input', `colorized${score ? ` ${score.value.toFixed(1)} dB` : ''}`, 'truth'] : ['L input', 'truth'];
    }).flat();
    return { panels: stack(columns, 1).flatten(0, 1), captions, columns: columns.length };
  },
};
