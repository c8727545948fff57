// Context Encoders (Pathak, Krähenbühl, Donahue, Darrell & Efros, CVPR 2016): fill a masked region
// of an image from its context. The encoder is the registered backbone, a channel-wise fully
// connected bottleneck spreads information across the whole feature map, a transposed-conv decoder
// paints the image back, and the loss is the paper's joint one: 0.999 x L2 on the hole (its border
// band of context weighted 10x, as their code's overlap) + 0.001 x adversarial.
import {
  arange,
  cat,
  empty,
  keep,
  nn,
  noGrad,
  rand,
  randint,
  randn,
  stack,
  where,
  zeros,
  type Generator,
  type Tensor,
} from '@pretext/torch';
import { z } from 'zod';
import type { Batch } from '../data/loader.js';
import { Backbone } from '../models/backbone.js';
import { UpsamplingDecoder } from '../models/decoder.js';
import { backboneOutputShape, KeptNormalization, psnrAnswers } from './generative.js';
import { adversarialLoss, psnrOfMse } from './image-metrics.js';
import { imagesAt } from './patches.js';
import {
  isImageAnswer,
  type Answer,
  type OptimizerPhase,
  type PretextBatch,
  type PretextTask,
  type ProbeModule,
  type StepResult,
  type TaskInstance,
  type TaskState,
} from './task.js';

const options = z
  .object({
    /** The hole: the central square (a quarter of the area, the paper's main setting), random rectangles, or random blobs. */
    mask: z.enum(['center', 'rectangles', 'blobs']).default('center'),
    /** How the encoder learns where the hole is: an extra input channel, or only the dataset-mean fill (the paper). */
    maskInput: z.enum(['channel', 'fill']).default('channel'),
    /** Weight of the adversarial loss against (1 - it) x L2; 0 turns the discriminator off. */
    adversarialWeight: z.number().min(0).max(1).default(0.001),
    /** Width in px of the context band around the hole that the L2 also covers; default imageSize / 32 (the paper's 4 px at 128). */
    overlap: z.number().int().min(0).optional(),
    /** Loss weight of that band relative to the hole (the paper's code: 10). */
    overlapWeight: z.number().positive().default(10),
    /** Channels of the decoder's first upsampling stage. */
    decoderWidth: z.number().int().positive().default(128),
    /** Channels of the discriminator's first convolution (doubled per stage, at most 8x). */
    discriminatorWidth: z.number().int().positive().default(64),
  })
  .strict();

type InpaintingOptions = z.infer<typeof options>;
type MaskKind = InpaintingOptions['mask'];

// ---------------------------------------------------------------------------------------------
// Masks: float N x 1 x H x W, 1 in the hole.

/** Random rectangles per image, each side in [size/8, size/4]: together up to a quarter of the image (the paper's random blocks). */
export const RECTANGLES = 4;
/** Blob masks cover a fraction of the image drawn uniformly from this range. */
export const BLOB_COVERAGE = [0.2, 0.3] as const;
/** Blobs are thresholded Gaussian noise on a grid this many cells wide, upsampled bilinearly. */
const BLOB_GRID = 4;

/** The central square of side size/2: exactly a quarter of the area (size must be even). */
export function centerMask(n: number, size: number): Tensor {
  if (size % 2 !== 0) throw new RangeError(`centerMask: the image size must be even, got ${size}`);
  const steps = arange(0, size, 1, 'float32');
  const middle = steps
    .ge(size / 4)
    .logicalAnd(steps.lt((3 * size) / 4))
    .float();
  return middle
    .view([size, 1])
    .mul(middle.view([1, size]))
    .expand([n, 1, size, size])
    .contiguous();
}

/** The square of centerMask cut out of N x C x H x W images. */
export function centerCrop(images: Tensor): Tensor {
  const size = images.shape[2];
  const [start, side] = [Math.ceil(size / 4), size / 2];
  return images.narrow(2, start, side).narrow(3, start, side);
}

/** RECTANGLES axis-aligned rectangles per image at random positions, sides uniform in [size/8, size/4]. */
export function rectangleMask(n: number, size: number, generator: Generator): Tensor {
  const lo = Math.max(1, Math.round(size / 8));
  const hi = Math.max(lo, Math.round(size / 4));
  const sides = randint(lo, hi + 1, [2, n, RECTANGLES, 1, 1], generator).float();
  const starts = rand([2, n, RECTANGLES, 1, 1], generator)
    .mul(sides.rsub(size + 1))
    .floor();
  const steps = arange(0, size, 1, 'float32');
  const within = (axis: number, view: number[]) => {
    const at = steps.view(view);
    return at.ge(starts.select(0, axis)).logicalAnd(at.lt(starts.select(0, axis).add(sides.select(0, axis))));
  };
  const inside = within(0, [1, 1, size, 1]).logicalAnd(within(1, [1, 1, 1, size])); // N x R x H x W
  return inside.float().amax(1, true);
}

/** Smooth random blobs: the highest values of upsampled noise, as many as a fraction in BLOB_COVERAGE of each image. */
export function blobMask(n: number, size: number, generator: Generator): Tensor {
  const noise = nn.functional.interpolate(randn([n, 1, BLOB_GRID, BLOB_GRID], generator), { size, mode: 'bilinear' }).view([n, -1]);
  const [lo, hi] = BLOB_COVERAGE;
  const pixels = size * size;
  const count = rand([n, 1], generator)
    .mul(hi - lo)
    .add(lo)
    .mul(pixels)
    .round()
    .clamp(1, pixels)
    .toDtype('int64');
  // Ranks, not a threshold: ties (the upsampling's flat borders) cannot make a mask exceed its count.
  const rank = noise.argsort(1, true).argsort(1);
  return rank.lt(count).float().view([n, 1, size, size]);
}

export function makeMask(kind: MaskKind, n: number, size: number, generator: Generator): Tensor {
  switch (kind) {
    case 'center':
      return centerMask(n, size);
    case 'rectangles':
      return rectangleMask(n, size, generator);
    case 'blobs':
      return blobMask(n, size, generator);
  }
}

// ---------------------------------------------------------------------------------------------
// Loss weights and the baselines' fills.

/** Per-pixel L2 weights N x 1 x H x W: 1 in the hole, `bandWeight` on context within `overlap` px of it, 0 elsewhere. */
export function overlapWeights(mask: Tensor, overlap: number, bandWeight: number): Tensor {
  if (overlap === 0) return mask;
  const grown = nn.functional.maxPool2d(mask, 2 * overlap + 1, { stride: 1, padding: overlap });
  return grown.sub(mask).mul(bandWeight).add(mask);
}

/** The weighted squared error, as a mean over the covered pixels (weight > 0) and the channels, as the paper's code. */
export function overlapL2(prediction: Tensor, target: Tensor, weights: Tensor): Tensor {
  const covered = weights.gt(0).sum().mul(prediction.shape[1]).clamp(1);
  return prediction.sub(target).square().mul(weights).sum().div(covered);
}

/** The hole filled with the dataset mean: zero in the loader's normalized space. */
export function meanFill(images: Tensor, mask: Tensor): Tensor {
  return images.mul(mask.rsub(1));
}

/** The prediction inside the hole, the image outside it. */
export function paste(prediction: Tensor, images: Tensor, mask: Tensor): Tensor {
  return where(mask.gt(0.5), prediction, images);
}

/**
 * The hole filled by diffusing its surroundings in: each pass replaces every hole pixel that the
 * context has reached by the mean of its reached 3 x 3 neighbours (a normalized blur), the
 * context staying fixed. `iterations` passes reach `iterations` px into the hole; pixels still
 * unreached keep the mean fill.
 */
export function blurFill(images: Tensor, mask: Tensor, iterations: number): Tensor {
  const hole = mask.gt(0.5);
  const blur = (x: Tensor) => nn.functional.avgPool2d(x, 3, { stride: 1, padding: 1 });
  let reached = mask.rsub(1);
  let values = images.mul(reached); // always values x reached, so blur(values) / blur(reached) is a weighted mean
  for (let i = 0; i < iterations; i++) {
    const weight = blur(reached);
    values = where(hole, blur(values).div(weight.clamp(1e-6)), images);
    reached = where(hole, weight.gt(0).float(), reached);
  }
  return values;
}

// ---------------------------------------------------------------------------------------------
// Modules

/** N x C x H x W through a dense layer per channel over the HW positions: weight C x HW x HW, bias C x 1 x HW. */
export function channelwiseLinear(x: Tensor, weight: Tensor, bias: Tensor): Tensor {
  const [n, c, h, w] = x.shape;
  const perChannel = x.reshape([n, c, h * w]).permute([1, 0, 2]); // C x N x HW
  return perChannel.bmm(weight).add(bias).permute([1, 0, 2]).reshape([n, c, h, w]);
}

/**
 * The paper's channel-wise fully connected layer: for each channel its own dense layer over the
 * spatial positions (C x HW x HW weights instead of a full (CHW)^2 layer), so every output
 * position sees the whole map of its channel; N x C x H x W in and out.
 */
export class ChannelwiseLinear extends nn.Module {
  weight: nn.Parameter;
  bias: nn.Parameter;

  constructor(channels: number, positions: number) {
    super();
    const bound = 1 / Math.sqrt(positions); // nn.Linear's default, per channel
    this.weight = new nn.Parameter(nn.init.uniform_(empty([channels, positions, positions]), -bound, bound));
    this.bias = new nn.Parameter(nn.init.uniform_(empty([channels, 1, positions]), -bound, bound));
  }

  forward(x: Tensor): Tensor {
    return channelwiseLinear(x, this.weight, this.bias);
  }
}

/** Channel-wise FC, then a 1 x 1 convolution to mix the channels (the paper's stride-1 conv), BatchNorm, ReLU. */
export class ChannelwiseBottleneck extends nn.Module {
  layers: nn.Sequential;

  constructor(channels: number, positions: number) {
    super();
    this.layers = new nn.Sequential(
      new ChannelwiseLinear(channels, positions),
      new nn.Conv2d(channels, channels, 1, { bias: false }),
      new nn.BatchNorm2d(channels),
      nn.ReLU({ inplace: true }),
    );
  }

  forward(x: Tensor): Tensor {
    return this.layers.forward(x);
  }
}

/**
 * DCGAN-style discriminator: one block per stage, a stride-2 4 x 4 conv with LeakyReLU(0.2)
 * (BatchNorm after the first), down to 4 x 4 or less; then a conv over the whole last map to one
 * logit per image, outside the blocks, so that the blocks are probe-able features.
 */
export class Discriminator extends Backbone {
  readonly blockNames: string[] = [];
  readonly blockChannels: number[] = [];
  protected readonly blocks: nn.ModuleList;
  logit: nn.Conv2d;

  constructor(inChannels: number, size: number, width: number) {
    super();
    const stages: nn.Sequential[] = [];
    let channels = inChannels;
    let side = size;
    for (let stage = 0; side > 4; stage++, side = Math.floor(side / 2)) {
      const out = Math.min(width * 2 ** stage, width * 8);
      const norm = stage > 0 ? [new nn.BatchNorm2d(out)] : [];
      stages.push(
        new nn.Sequential(new nn.Conv2d(channels, out, 4, { stride: 2, padding: 1, bias: stage === 0 }), ...norm, nn.LeakyReLU(0.2)),
      );
      this.blockNames.push(`block${stage + 1}`);
      this.blockChannels.push(out);
      channels = out;
    }
    this.blocks = new nn.ModuleList(stages);
    this.logit = new nn.Conv2d(channels, 1, side);
  }

  /** Logits N (an input of 4 x 4 or less has no blocks: the logit conv alone). */
  override forward(images: Tensor): Tensor {
    const features = this.blockNames.length > 0 ? super.forward(images) : images;
    return this.logit.forward(features).view([-1]);
  }
}

// ---------------------------------------------------------------------------------------------
// The task

class InpaintingModel implements TaskInstance {
  readonly modules: { backbone: Backbone; bottleneck: ChannelwiseBottleneck; decoder: UpsamplingDecoder; discriminator: Discriminator };
  private readonly overlap: number;
  private readonly normalization: KeptNormalization;
  /** The generator phase's completed images, handed to the discriminator phase of the same batch. */
  private completed?: { batch: PretextBatch; images: Tensor };

  constructor(
    backbone: Backbone,
    private readonly o: InpaintingOptions,
    private readonly channels: number,
    private readonly imageSize: number,
    normalization: KeptNormalization,
  ) {
    if (imageSize % 2 !== 0) throw new RangeError(`inpainting: the image size must be even, got ${imageSize}`);
    const takes = backbone.parameters().find((p) => p.ndim === 4)?.shape[1];
    const wanted = encoderChannels(channels, o);
    if (takes !== wanted) {
      throw new Error(
        `inpainting: with maskInput '${o.maskInput}' the backbone must take ${wanted} input channels (data ${channels}), it takes ${takes}`,
      );
    }
    this.overlap = o.overlap ?? Math.max(1, Math.round(imageSize / 32));
    this.normalization = normalization;
    const [features, fromSize] = backboneOutputShape(backbone, wanted, imageSize);
    const regionSize = o.mask === 'center' ? imageSize / 2 : imageSize;
    this.modules = {
      backbone,
      bottleneck: new ChannelwiseBottleneck(features, fromSize * fromSize),
      decoder: new UpsamplingDecoder({ inChannels: features, outChannels: channels, fromSize, toSize: imageSize, width: o.decoderWidth }),
      discriminator: new Discriminator(channels, regionSize, o.discriminatorWidth),
    };
  }

  phases(): OptimizerPhase[] {
    const { backbone, bottleneck, decoder, discriminator } = this.modules;
    return [
      { name: 'generator', parameters: [...backbone.parameters(), ...bottleneck.parameters(), ...decoder.parameters()] },
      { name: 'discriminator', parameters: discriminator.parameters(), active: () => this.o.adversarialWeight > 0 },
    ];
  }

  prepare(batch: Batch, generator: Generator): PretextBatch {
    const images = imagesAt(batch, this.imageSize);
    const mask = makeMask(this.o.mask, images.shape[0], this.imageSize, generator);
    const filled = meanFill(images, mask);
    return { inputs: this.o.maskInput === 'channel' ? cat([filled, mask], 1) : filled, targets: images, extra: { mask } };
  }

  encoderInput(images: Tensor): Tensor {
    if (this.o.maskInput === 'fill') return images;
    const [n, , h, w] = images.shape;
    return cat([images, zeros([n, 1, h, w])], 1);
  }

  /**
   * The discriminator sees images as in training, as the paper's does: the center crop for the
   * center mask (the region it judged), else the whole image, normalized like the inputs.
   */
  probes(): Record<string, ProbeModule> {
    return { discriminator: { module: this.modules.discriminator, input: (images) => this.region(images) } };
  }

  /** The decoder's image N x C x H x W (normalized like the inputs). */
  predict(inputs: Tensor): Tensor {
    const { backbone, bottleneck, decoder } = this.modules;
    return decoder.forward(bottleneck.forward(backbone.forward(inputs)));
  }

  /** What the discriminator judges: the center crop for the center mask, else the whole image. */
  private region(images: Tensor): Tensor {
    return this.o.mask === 'center' ? centerCrop(images) : images;
  }

  step(batch: PretextBatch, phase: string): StepResult {
    if (phase === 'discriminator') return this.discriminatorStep(batch);
    if (phase !== 'generator') throw new Error(`inpainting: no phase '${phase}'`);
    const mask = batch.extra!.mask;
    const prediction = this.predict(batch.inputs);
    const l2 = overlapL2(prediction, batch.targets, overlapWeights(mask, this.overlap, this.o.overlapWeight));
    const completed = paste(prediction, batch.targets, mask);
    const metrics: Record<string, Tensor> = { l2, ...noGrad(() => this.quality(completed, batch.targets, mask)) };
    const weight = this.o.adversarialWeight;
    if (weight === 0) return { loss: l2, metrics };
    metrics.adversarial = adversarialLoss(this.modules.discriminator.forward(this.region(completed)), true);
    this.completed?.images.dispose();
    this.completed = { batch, images: keep(completed.detach()) };
    return { loss: l2.mul(1 - weight).add(metrics.adversarial.mul(weight)), metrics };
  }

  private discriminatorStep(batch: PretextBatch): StepResult {
    const { targets, inputs } = batch;
    const cached = this.completed?.batch === batch ? this.completed.images : undefined;
    this.completed = undefined;
    const fake = cached ?? noGrad(() => paste(this.predict(inputs), targets, batch.extra!.mask));
    const { discriminator } = this.modules;
    const real = discriminator.forward(this.region(targets));
    const generated = discriminator.forward(this.region(fake));
    cached?.dispose(); // autograd holds its own reference for the backward pass
    const loss = adversarialLoss(real, true).add(adversarialLoss(generated, false));
    const acc = cat([real.gt(0), generated.le(0)])
      .float()
      .mean();
    return { loss, metrics: { acc } };
  }

  /** Per-sample mean squared and absolute error over the hole, in display units. */
  private holeErrors(completed: Tensor, targets: Tensor, mask: Tensor): { mse: Tensor; l1: Tensor } {
    const display = (images: Tensor) => this.normalization.toDisplay(images);
    const difference = display(completed).sub(display(targets)).mul(mask);
    const count = mask.flatten(1).sum(1).mul(this.channels).clamp(1);
    return { mse: difference.square().flatten(1).sum(1).div(count), l1: difference.abs().flatten(1).sum(1).div(count) };
  }

  /** Hole PSNR and L1 of the completed images, and the PSNR of the mean and blur fills for comparison. */
  quality(completed: Tensor, targets: Tensor, mask: Tensor): Record<string, Tensor> {
    const psnrOf = (images: Tensor) => psnrOfMse(this.holeErrors(images, targets, mask).mse).mean();
    const errors = this.holeErrors(completed, targets, mask);
    return {
      psnr: psnrOfMse(errors.mse).mean(),
      l1: errors.l1.mean(),
      meanFillPsnr: psnrOf(meanFill(targets, mask)),
      blurFillPsnr: psnrOf(blurFill(targets, mask, this.imageSize / 2)),
    };
  }

  answers(batch: PretextBatch): Answer[] {
    const mask = batch.extra!.mask;
    const completed = paste(this.predict(batch.inputs), batch.targets, mask);
    return psnrAnswers(completed, psnrOfMse(this.holeErrors(completed, batch.targets, mask).mse));
  }

  state(): TaskState {
    return this.normalization.state();
  }

  loadState(state: TaskState): void {
    this.normalization.load(state);
  }
}

/** The backbone's input channels: the data's, plus the mask channel unless the hole is only mean-filled. */
export const encoderChannels = (dataChannels: number, o?: Pick<InpaintingOptions, 'maskInput'>): number =>
  o?.maskInput === 'fill' ? dataChannels : dataChannels + 1;

export const inpaintingTask: PretextTask<typeof options> = {
  name: 'inpainting',
  description: 'Context Encoder: paint in a masked region of the image from its surroundings (L2 + adversarial)',
  paper: 'Pathak, Krähenbühl, Donahue, Darrell & Efros, Context Encoders: Feature Learning by Inpainting, CVPR 2016',
  options,
  // The paper: Adam at 2e-4 with beta1 0.5 for the context encoder, the discriminator's rate 10x lower; batch 64.
  defaults: {
    backbone: 'alexnet',
    epochs: 100,
    batchSize: 64,
    optimizer: {
      generator: { name: 'adam', lr: 2e-4, betas: [0.5, 0.999] },
      discriminator: { name: 'adam', lr: 2e-5, betas: [0.5, 0.999] },
    },
    schedule: { name: 'constant' },
  },
  selection: { metric: 'generator/psnr', mode: 'max' },
  collapse: { metric: 'discriminator/acc', steps: 200 },
  // The contract passes only the data's channels for now, which gives the default 'channel' layout.
  inputChannels: encoderChannels,
  create: (backbone, o, context) =>
    new InpaintingModel(backbone, o, context.inChannels, context.imageSize, new KeptNormalization(context.inChannels, context.store)),
  picture(batch, answers, display) {
    const { targets } = batch;
    const mask = batch.extra!.mask;
    const images = answers?.filter(isImageAnswer);
    const filled = images?.length ? stack(images.map((a) => a.image)) : blurFill(targets, mask, targets.shape[2] / 2);
    const rows = stack([meanFill(targets, mask), filled, targets], 1).flatten(0, 1);
    const filledCaption = (i: number) => {
      const score = images?.[i]?.score;
      return score ? `filled, ${score.value.toFixed(1)} dB` : images?.length ? 'filled' : 'blur fill';
    };
    return {
      panels: display(rows),
      captions: Array.from({ length: targets.shape[0] }, (_, i) => ['masked', filledCaption(i), 'truth']).flat(),
      columns: 3,
    };
  },
};
