// SRGAN (Ledig et al., CVPR 2017): recover an image from its antialiased bicubic downsampling. The
// registered backbone (SRResNet's trunk by default) runs on the low-res image, a sub-pixel upsampler
// paints the high-res one, and the loss is pixel MSE + a content loss (feature MSE in a fixed
// pretrained Pretext network) + 1e-3 x adversarial. An MSE-only warm-up (SRResNet) comes first; the
// content loss, the discriminator and the adversarial term start after it.
import { cat, keep, nn, noGrad, ones, stack, tensor, zeros, type Tensor } from '@pretext/torch';
import { z } from 'zod';
import { luminance, normalizeImages, type Batch } from '../data/loader.js';
import type { Backbone } from '../models/backbone.js';
import { loadRunBackbone, type RunBackbone } from '../models/run-backbone.js';
import { DenseCritic, SrganDiscriminator, SubPixelUpsampler } from '../models/srgan.js';
import { KeptNormalization, psnrAnswers } from './generative.js';
import { adversarialLoss, psnrPerSample, ssimPerSample } from './image-metrics.js';
import {
  isImageAnswer,
  type EpochContext,
  type ImageAnswer,
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
    /** Upscaling factor. Default 2: CIFAR's 32 px at the paper's 4x would leave 8 x 8 inputs. */
    scale: z.union([z.literal(2), z.literal(4)]).default(2),
    /** Epochs of MSE-only training (SRResNet) before the content loss, the discriminator and the adversarial term start. */
    warmupEpochs: z.number().int().min(0).default(10),
    /** Weight of the adversarial term (paper: 1e-3); 0 never trains a discriminator. */
    adversarialWeight: z.number().min(0).default(1e-3),
    /** A Pretext run (folder or checkpoint sidecar) whose backbone is the fixed content network; unset: no content loss. */
    contentCheckpoint: z.string().min(1).optional(),
    /** Block of the content network whose features are compared (default its last). */
    contentLayer: z.string().min(1).optional(),
    /**
     * Weight of the content loss, the feature MSE relative to the truth's mean squared feature (so
     * scale-free across networks and layers); 0.1 makes it about as large as the pixel MSE after the warm-up.
     */
    contentWeight: z.number().min(0).default(0.1),
    /** Channels of the discriminator's first block (paper: 64). */
    discriminatorWidth: z.number().int().positive().default(64),
  })
  .strict();

type SuperresOptions = z.infer<typeof options>;

/** The cubic convolution kernel with a = -0.5, as PIL's and PyTorch's antialiased bicubic use. */
function cubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  return t < 2 ? (((t - 5) * t + 8) * t - 4) * a : 0;
}

/**
 * Antialiased bicubic downsampling by an integer factor, as PIL's resize and PyTorch's
 * `interpolate(..., mode='bicubic', antialias=True)`: the cubic kernel stretched by the factor (so
 * it also low-passes), its weights renormalized where it overhangs the border. One strided
 * separable depthwise convolution over every channel of the batch.
 */
export function bicubicDownsample(images: Tensor, factor: number): Tensor {
  const [n, c, h, w] = images.shape;
  if (!Number.isInteger(factor) || factor < 1 || h % factor || w % factor)
    throw new RangeError(`bicubicDownsample: the factor must be a positive integer dividing ${h} x ${w}, got ${factor}`);
  if (factor === 1) return images;
  const taps = 4 * factor - (factor % 2);
  const kernel = tensor(Array.from({ length: taps }, (_, j) => cubic((j - (taps - 1) / 2) / factor)));
  const pad = (taps - factor) / 2;
  const separable = (x: Tensor) => {
    const rows = nn.functional.conv2d(x, kernel.view([1, 1, 1, taps]), null, { stride: [1, factor], padding: [0, pad] });
    return nn.functional.conv2d(rows, kernel.view([1, 1, taps, 1]), null, { stride: [factor, 1], padding: [pad, 0] });
  };
  // Zero padding plus division by the filtered ones: the in-bounds weights, renormalized.
  const coverage = separable(ones([1, 1, h, w]));
  return separable(images.reshape([n * c, 1, h, w]))
    .div(coverage)
    .view([n, c, h / factor, w / factor]);
}

/** Bicubic upsampling by `factor`, the baseline SR has to beat. */
export const bicubicUpsample = (images: Tensor, factor: number): Tensor =>
  nn.functional.interpolate(images, { scaleFactor: factor, mode: 'bicubic' });

/** The fixed content network, and its input normalization. */
interface ContentNetwork extends RunBackbone {
  layer: string;
}

class SuperresModel implements TaskInstance {
  readonly modules: { backbone: Backbone; upsampler: SubPixelUpsampler; discriminator: SrganDiscriminator; critic: DenseCritic };
  private readonly normalization: KeptNormalization;
  /** Loaded when training starts (onEpochStart), so that evaluating a run does not need the content run. */
  private content?: ContentNetwork;
  private epoch = 0;
  private started = false;
  /** The generator phase's output, handed to the discriminator phase of the same batch. */
  private generated?: { batch: PretextBatch; images: Tensor };

  constructor(
    backbone: Backbone,
    private readonly o: SuperresOptions,
    private readonly channels: number,
    imageSize: number,
    normalization: KeptNormalization,
  ) {
    if (imageSize % o.scale) throw new RangeError(`superres: the image size ${imageSize} is not a multiple of the scale ${o.scale}`);
    this.normalization = normalization;
    // A dry forward in eval mode (BatchNorm statistics untouched) measures the trunk's output.
    const wasTraining = backbone.training;
    backbone.eval();
    const [, features, side] = noGrad(() => backbone.forward(zeros([1, channels, imageSize / o.scale, imageSize / o.scale])).shape);
    backbone.train(wasTraining);
    const discriminator = new SrganDiscriminator({ width: o.discriminatorWidth, inChannels: channels });
    this.modules = {
      backbone,
      upsampler: new SubPixelUpsampler(features, channels, imageSize / side, Math.min(64, features)),
      discriminator,
      critic: new DenseCritic(discriminator.outChannels, SrganDiscriminator.outputSize(imageSize)),
    };
    if (o.contentLayer && !o.contentCheckpoint) throw new Error("superres: 'contentLayer' needs 'contentCheckpoint'");
  }

  private loadContent(path: string): ContentNetwork {
    const network = loadRunBackbone(path);
    if (network.normalization.mean.length !== this.channels)
      throw new Error(
        `superres: the content network takes ${network.normalization.mean.length}-channel images, the data has ${this.channels}`,
      );
    const layer = this.o.contentLayer ?? network.backbone.blockNames.at(-1)!;
    network.backbone.indexOf(layer);
    return { ...network, layer };
  }

  /** Whether the discriminator and the adversarial term are on in `epoch`: after the warm-up, as the content loss. */
  private adversarialAt(epoch: number): boolean {
    return this.o.adversarialWeight > 0 && epoch >= this.o.warmupEpochs;
  }

  phases(): OptimizerPhase[] {
    const { backbone, upsampler, discriminator, critic } = this.modules;
    return [
      { name: 'generator', parameters: [...backbone.parameters(), ...upsampler.parameters()] },
      {
        name: 'discriminator',
        parameters: [...discriminator.parameters(), ...critic.parameters()],
        active: ({ epoch }) => this.adversarialAt(epoch),
      },
    ];
  }

  onEpochStart(context: EpochContext): void {
    this.epoch = context.epoch;
    if (this.started) return;
    this.started = true;
    const { o } = this;
    if (o.contentCheckpoint) this.content = this.loadContent(o.contentCheckpoint);
    const { content } = this;
    context.log(
      content
        ? `superres: content loss ${o.contentWeight} x relative MSE of ${content.name} features at ${content.layer} (${o.contentCheckpoint})`
        : 'superres: no contentCheckpoint, so the content loss is off (weight 0): pixel MSE + adversarial only',
    );
    context.log(`superres: MSE-only warm-up (SRResNet) for ${o.warmupEpochs} epoch(s), then content and adversarial losses`);
  }

  prepare(batch: Batch): PretextBatch {
    const targets = batch.images;
    const inputs = bicubicDownsample(targets, this.o.scale);
    return { inputs, targets, extra: { bicubic: bicubicUpsample(inputs, this.o.scale) } };
  }

  encoderInput(images: Tensor): Tensor {
    return bicubicDownsample(images, this.o.scale);
  }

  /** The discriminator judges full-resolution images normalized like the inputs: the loader's images as they are. */
  probes(): Record<string, ProbeModule> {
    return { discriminator: { module: this.modules.discriminator } };
  }

  /** The super-resolved images N x C x H x W, normalized like the inputs. */
  predict(inputs: Tensor): Tensor {
    return this.modules.upsampler.forward(this.modules.backbone.forward(inputs));
  }

  private judge(images: Tensor): Tensor {
    return this.modules.critic.forward(this.modules.discriminator.forward(images));
  }

  step(batch: PretextBatch, phase: string): StepResult {
    if (phase === 'discriminator') return this.discriminatorStep(batch);
    if (phase !== 'generator') throw new Error(`superres: no phase '${phase}'`);
    const { targets } = batch;
    const sr = this.predict(batch.inputs);
    const mse = nn.functional.mseLoss(sr, targets);
    const metrics: Record<string, Tensor> = { mse, ...noGrad(() => this.quality(sr, targets, batch.extra!.bicubic)) };
    let loss = mse;
    if (this.content && this.o.contentWeight > 0 && this.epoch >= this.o.warmupEpochs) {
      metrics.content = this.contentLoss(sr, targets);
      loss = loss.add(metrics.content.mul(this.o.contentWeight));
    }
    if (this.adversarialAt(this.epoch)) {
      metrics.adversarial = adversarialLoss(this.judge(sr), true);
      loss = loss.add(metrics.adversarial.mul(this.o.adversarialWeight));
      this.generated?.images.dispose();
      this.generated = { batch, images: keep(sr.detach()) };
    }
    return { loss, metrics };
  }

  private discriminatorStep(batch: PretextBatch): StepResult {
    const cached = this.generated?.batch === batch ? this.generated.images : undefined;
    this.generated = undefined;
    const fake = cached ?? noGrad(() => this.predict(batch.inputs));
    const real = this.judge(batch.targets);
    const generated = this.judge(fake);
    cached?.dispose(); // autograd holds its own reference for the backward pass
    const loss = adversarialLoss(real, true).add(adversarialLoss(generated, false));
    return {
      loss,
      metrics: {
        acc: cat([real.gt(0), generated.le(0)])
          .float()
          .mean(),
      },
    };
  }

  /** Feature MSE between SR and truth in the content network (each in its normalization), relative to the truth's mean square. */
  private contentLoss(sr: Tensor, targets: Tensor): Tensor {
    const { backbone, layer, normalization } = this.content!;
    const renormalize = (images: Tensor) =>
      normalizeImages(this.normalization.toDisplay(images, false), normalization.mean, normalization.std);
    const truth = noGrad(() => backbone.forwardTo(renormalize(targets), layer));
    return nn.functional.mseLoss(backbone.forwardTo(renormalize(sr), layer), truth).div(truth.square().mean().clamp(1e-8));
  }

  /** Per-sample PSNR and SSIM on the luminance of [0, 1] images. */
  private scores(images: Tensor, targets: Tensor): { psnr: Tensor; ssim: Tensor } {
    const [y, truth] = [images, targets].map((t) => luminance(this.normalization.toDisplay(t)));
    return { psnr: psnrPerSample(y, truth), ssim: ssimPerSample(y, truth) };
  }

  /** PSNR and SSIM of the SR images and of bicubic upsampling, batch means. */
  quality(sr: Tensor, targets: Tensor, bicubic: Tensor): Record<string, Tensor> {
    const ours = this.scores(sr, targets);
    const baseline = this.scores(bicubic, targets);
    return { psnr: ours.psnr.mean(), ssim: ours.ssim.mean(), bicubicPsnr: baseline.psnr.mean(), bicubicSsim: baseline.ssim.mean() };
  }

  answers(batch: PretextBatch): ImageAnswer[] {
    const sr = this.predict(batch.inputs);
    return psnrAnswers(sr, this.scores(sr, batch.targets).psnr);
  }

  state(): TaskState {
    return this.normalization.state();
  }

  loadState(state: TaskState): void {
    this.normalization.load(state);
  }
}

export const superresTask: PretextTask<typeof options> = {
  name: 'superres',
  description: 'SRGAN: super-resolve antialiased bicubic downsamplings (MSE warm-up, then content + adversarial loss)',
  paper: 'Ledig et al., Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network, CVPR 2017',
  options,
  // The paper: SRResNet-16, batch 16, Adam at 1e-4 with betas (0.9, 0.999) for both networks.
  defaults: {
    backbone: 'srresnet',
    epochs: 12,
    batchSize: 16,
    optimizer: {
      generator: { name: 'adam', lr: 1e-4, betas: [0.9, 0.999] },
      discriminator: { name: 'adam', lr: 1e-4, betas: [0.9, 0.999] },
    },
    schedule: { name: 'constant' },
  },
  selection: { metric: 'generator/psnr', mode: 'max' },
  collapse: { metric: 'discriminator/acc', steps: 200 },
  create: (backbone, o, context) =>
    new SuperresModel(backbone, o, context.inChannels, context.imageSize, new KeptNormalization(context.inChannels, context.store)),
  picture(batch, answers, display) {
    const { inputs, targets } = batch;
    const n = targets.shape[0];
    const factor = targets.shape[2] / inputs.shape[2];
    const lowRes = nn.functional.interpolate(inputs, { scaleFactor: factor, mode: 'nearest' });
    const srAnswers = answers?.length === n ? answers.filter(isImageAnswer) : [];
    const answered = srAnswers.length === n;
    const columns = [lowRes, batch.extra!.bicubic, ...(answered ? [stack(srAnswers.map((a) => a.image))] : []), targets];
    const bicubicPsnr = psnrPerSample(luminance(display(batch.extra!.bicubic)), luminance(display(targets))).toArray();
    const captions = Array.from({ length: n }, (_, i) => [
      `low-res ${inputs.shape[2]} px`,
      `bicubic ${bicubicPsnr[i].toFixed(1)} dB`,
      ...(answered ? [`SR ${srAnswers[i].score!.value.toFixed(1)} dB`] : []),
      'truth',
    ]).flat();
    return { panels: display(stack(columns, 1).flatten(0, 1)), captions, columns: columns.length };
  },
};
