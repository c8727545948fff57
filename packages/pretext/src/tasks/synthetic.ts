// Synthetic imagery (Ren & Lee, CVPR 2018): one encoder learns depth, surface normals and instance
// contours of rendered scenes, whose geometry comes free from the renderer, while a discriminator on
// its mid-level features pushes synthetic and real images to look alike (feature-space domain
// adaptation, trained as a GAN with inverted labels for the encoder, as the authors' code does).
//
// Heads: three UpsamplingDecoders on the encoder's last feature map (option `decoders: 'separate'`,
// as the authors' netH) or one decoder whose 3x3 projection gives all five output channels
// ('shared'). Outputs: log-depth (1), normals (3, normalized to unit length), contour logits (1).
import { cat, empty, fromTypedArray, keep, nn, noGrad, stack, tensor, zeros, type Generator, type Tensor } from '@pretext/torch';
import { z } from 'zod';
import type { Batch } from '../data/loader.js';
import { renderScene } from '../data/synthetic/index.js';
import type { SampleStore } from '../data/store.js';
import type { Backbone } from '../models/backbone.js';
import { UpsamplingDecoder } from '../models/decoder.js';
import { adversarialLoss } from './image-metrics.js';
import type { Answer, ImageAnswer, OptimizerPhase, PretextBatch, PretextTask, StepResult, TaskInstance } from './task.js';

const options = z
  .object({
    /** L1 on log-depth, or Eigen et al.'s scale-invariant log loss (lambda 0.5). */
    depthLoss: z.enum(['log-l1', 'scale-invariant']).default('log-l1'),
    /** Weight of the encoder's adversarial term (0.1 in the authors' config); 0 turns domain adaptation off. */
    domainWeight: z.number().min(0).default(0.1),
    /** Encoder block whose features the discriminator sees (default: the block before the last). */
    domainLayer: z.string().optional(),
    decoders: z.enum(['separate', 'shared']).default('separate'),
    /** Channels of each decoder's first upsampling stage (64 in the authors' heads). */
    decoderWidth: z.number().int().positive().default(64),
  })
  .strict();

/** Geometry channels of a prepared batch's targets: depth, normal x/y/z, contour, hit mask. */
const GEOMETRY_CHANNELS = 6;
/** Output channels of the heads: log-depth, normal x/y/z, contour logit. */
const OUTPUT_SPLIT = [1, 3, 1];
const WITHIN_DEGREES = 11.25;

export interface Geometry {
  /** N x 1 x H x W z-depth (the camera's far plane on background). */
  depth: Tensor;
  /** N x 3 x H x W unit normals in camera space (0 on background). */
  normals: Tensor;
  /** N x 1 x H x W, 1 on instance boundaries. */
  contours: Tensor;
  /** N x 1 x H x W, 1 where a surface was hit (depth and normals are defined). */
  mask: Tensor;
}

export interface GeometryPrediction {
  logDepth: Tensor;
  /** Unit length along channels. */
  normals: Tensor;
  contourLogits: Tensor;
}

export function splitGeometry(targets: Tensor): Geometry {
  const [depth, normals, contours, mask] = targets.splitWithSizes([1, 3, 1, 1], 1);
  return { depth, normals, contours, mask };
}

// ---------------------------------------------------------------------------------------------
// Losses and metrics (batched; pixel statistics pooled over the batch)

/** Mean of N x 1 x H x W `values` over pixels where `mask` is 1: over the batch, or per sample (N). */
function maskedMean(values: Tensor, mask: Tensor, perSample = false): Tensor {
  const dims = perSample ? [1, 2, 3] : null;
  return values.mul(mask).sum(dims).div(mask.sum(dims).clamp(1));
}

/** Depth loss on log-depth predictions over hit pixels. */
export function depthLoss(logDepth: Tensor, depth: Tensor, mask: Tensor, kind: 'log-l1' | 'scale-invariant' = 'log-l1'): Tensor {
  const difference = logDepth.sub(depth.log());
  if (kind === 'log-l1') return maskedMean(difference.abs(), mask);
  // Eigen et al. 2014, per image: mean(d^2) - 0.5 mean(d)^2 over its hit pixels.
  const d = difference.mul(mask);
  const count = mask.sum([1, 2, 3]).clamp(1);
  return d
    .square()
    .sum([1, 2, 3])
    .div(count)
    .sub(d.sum([1, 2, 3]).div(count).square().mul(0.5))
    .mean();
}

/** 1 - cosine between unit normals, averaged over hit pixels. */
export function normalLoss(normals: Tensor, truth: Tensor, mask: Tensor): Tensor {
  return maskedMean(nn.functional.cosineSimilarity(normals, truth).unsqueeze(1).rsub(1), mask);
}

/** HED's per-image class balance: positives weigh the fraction of negatives, negatives the fraction of positives. */
export function balancedWeights(contours: Tensor): Tensor {
  const positives = contours.mean([1, 2, 3], true);
  return contours.mul(positives.rsub(1)).add(contours.rsub(1).mul(positives));
}

/** Class-balanced binary cross-entropy on contour logits (Xie & Tu, HED), averaged over pixels. */
export function balancedContourLoss(logits: Tensor, contours: Tensor): Tensor {
  return nn.functional.bceWithLogits(logits, contours, { weight: balancedWeights(contours) });
}

/** Absolute relative error and RMSE of predicted depth over hit pixels. */
export function depthErrors(depth: Tensor, truth: Tensor, mask: Tensor): { absRel: Tensor; rmse: Tensor } {
  const error = depth.sub(truth);
  return { absRel: maskedMean(error.abs().div(truth), mask), rmse: maskedMean(error.square(), mask).sqrt() };
}

/** Angle in degrees between unit normals, per pixel (N x 1 x H x W). */
export function angularError(normals: Tensor, truth: Tensor): Tensor {
  const cosine = nn.functional.cosineSimilarity(normals, truth).clamp(-1, 1);
  return cosine
    .square()
    .rsub(1)
    .clamp(0)
    .sqrt()
    .atan2(cosine)
    .mul(180 / Math.PI)
    .unsqueeze(1);
}

/** Mean angular error (degrees) and the percentage of hit pixels within 11.25 degrees. */
export function normalErrors(normals: Tensor, truth: Tensor, mask: Tensor): { meanAngle: Tensor; pctWithin11: Tensor } {
  const angle = angularError(normals, truth);
  return { meanAngle: maskedMean(angle, mask), pctWithin11: maskedMean(angle.lt(WITHIN_DEGREES).float(), mask).mul(100) };
}

/** F-score of contour probabilities thresholded at `threshold`, exact pixel matches pooled over the batch. */
export function contourFScore(probabilities: Tensor, contours: Tensor, threshold = 0.5): Tensor {
  const predicted = probabilities.ge(threshold).float();
  const hits = predicted.mul(contours).sum();
  const precision = hits.div(predicted.sum().clamp(1e-8));
  const recall = hits.div(contours.sum().clamp(1e-8));
  return precision.mul(recall).mul(2).div(precision.add(recall).clamp(1e-8));
}

/** Depth from log-depth outputs, clamped so an untrained head cannot overflow. */
const depthOf = (logDepth: Tensor): Tensor => logDepth.clamp(-10, 10).exp();

/** Every geometry metric of predictions against the truth. */
export function geometryMetrics(prediction: GeometryPrediction, truth: Geometry): Record<string, Tensor> {
  return {
    ...depthErrors(depthOf(prediction.logDepth), truth.depth, truth.mask),
    ...normalErrors(prediction.normals, truth.normals, truth.mask),
    contourF: contourFScore(prediction.contourLogits.sigmoid(), truth.contours),
  };
}

// ---------------------------------------------------------------------------------------------
// Geometry of the store's scenes

/** The renderer seed of every sample of a synthetic store (paths 'synthetic/<seed>'). */
export function sceneSeeds(store: SampleStore): Float64Array {
  return Float64Array.from(store.paths, (path, i) => {
    const match = /^synthetic\/(\d+)$/.exec(path);
    if (!match) throw new Error(`synthetic task: sample ${i} ('${path}') is not a rendered scene; train it on --data synthetic`);
    return Number(match[1]);
  });
}

/**
 * Depth, normals, contours and hit mask of a synthetic store's samples, each rendered once from its
 * seed when a batch first asks for it, kept in one store-sized tensor (memory is touched only for
 * rendered samples) and gathered per batch with indexSelect.
 */
export class GeometryCache {
  readonly #seeds: Float64Array;
  readonly #size: number;
  readonly #rendered: Uint8Array;
  readonly #geometry: Tensor;

  constructor(store: SampleStore, size: number) {
    this.#seeds = sceneSeeds(store);
    this.#size = size;
    this.#rendered = new Uint8Array(store.n);
    this.#geometry = keep(empty([store.n, GEOMETRY_CHANNELS, size, size]));
  }

  /** N x 6 x S x S geometry (see GEOMETRY_CHANNELS) of store samples `indices` (int64 N). */
  select(indices: Tensor): Tensor {
    const missing = [...new Set(indices.toArray())].filter((i) => !this.#rendered[i]);
    if (missing.length) this.#render(missing);
    return this.#geometry.indexSelect(0, indices);
  }

  #render(indices: number[]): void {
    const [m, s, pixels] = [indices.length, this.#size, this.#size * this.#size];
    const depth = new Float32Array(m * pixels);
    const normals = new Float32Array(m * pixels * 3);
    const contours = new Uint8Array(m * pixels);
    const mask = new Uint8Array(m * pixels);
    indices.forEach((index, k) => {
      const scene = renderScene(this.#seeds[index], { size: s });
      depth.set(scene.depth, k * pixels);
      normals.set(scene.normals, k * pixels * 3);
      contours.set(scene.contours, k * pixels);
      mask.set(scene.mask, k * pixels);
    });
    const planes = cat(
      [
        fromTypedArray(depth, [m, 1, s, s]),
        fromTypedArray(normals, [m, s, s, 3]).permute([0, 3, 1, 2]),
        fromTypedArray(contours, [m, 1, s, s]).float(),
        fromTypedArray(mask, [m, 1, s, s]).float(),
      ],
      1,
    );
    this.#geometry.indexPut_(tensor(indices, { dtype: 'int64' }), planes);
    planes.dispose();
    for (const index of indices) this.#rendered[index] = 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Model

/** The authors' netD on feature maps, without BatchNorm (each domain arrives as its own batch): one logit per image. */
export class FeatureDiscriminator extends nn.Module {
  layers: nn.Sequential;

  constructor(inChannels: number) {
    super();
    this.layers = new nn.Sequential(
      new nn.Conv2d(inChannels, 64, 3, { padding: 1 }),
      nn.LeakyReLU(0.2),
      new nn.Conv2d(64, 128, 3, { stride: 2, padding: 1 }),
      nn.LeakyReLU(0.2),
      new nn.Conv2d(128, 256, 3, { stride: 2, padding: 1 }),
      nn.LeakyReLU(0.2),
      new nn.Conv2d(256, 1, 1),
    );
  }

  forward(features: Tensor): Tensor {
    return this.layers.forward(features).mean([1, 2, 3]);
  }
}

/** Spatial side of a backbone's last block for square inputs of `imageSize` (one probe pass in eval mode). */
function outputSide(backbone: Backbone, inChannels: number, imageSize: number): number {
  const training = backbone.training;
  backbone.eval();
  const side = noGrad(() => {
    const out = backbone.forward(zeros([1, inChannels, imageSize, imageSize]));
    const s = out.shape[2];
    out.dispose();
    return s;
  });
  backbone.train(training);
  return side;
}

type Options = z.infer<typeof options>;

export class SyntheticModel implements TaskInstance {
  readonly modules: { backbone: Backbone; decoders: nn.ModuleList<UpsamplingDecoder>; discriminator: FeatureDiscriminator };
  readonly #options: Options;
  readonly #domainLayer: string;
  readonly #lastBlock: string;
  readonly #geometry: GeometryCache | undefined;
  /** Detached domain-layer features of a batch's main phase, reused by its discriminator phase. */
  readonly #syntheticFeatures = new WeakMap<PretextBatch, Tensor>();

  constructor(backbone: Backbone, o: Options, context: { inChannels: number; imageSize: number; store?: SampleStore }) {
    this.#options = o;
    const blocks = backbone.blockNames;
    this.#lastBlock = blocks[blocks.length - 1];
    this.#domainLayer = o.domainLayer ?? blocks[Math.max(0, blocks.length - 2)];
    const side = outputSide(backbone, context.inChannels, context.imageSize);
    const decoder = (outChannels: number) =>
      new UpsamplingDecoder({
        inChannels: backbone.outChannels,
        outChannels,
        fromSize: side,
        toSize: context.imageSize,
        width: o.decoderWidth,
      });
    const outputs = o.decoders === 'shared' ? [OUTPUT_SPLIT.reduce((a, b) => a + b)] : OUTPUT_SPLIT;
    this.modules = {
      backbone,
      decoders: new nn.ModuleList(outputs.map(decoder)),
      discriminator: new FeatureDiscriminator(backbone.channelsAt(this.#domainLayer)),
    };
    this.#geometry = context.store && new GeometryCache(context.store, context.imageSize);
  }

  phases(): OptimizerPhase[] {
    const { backbone, decoders, discriminator } = this.modules;
    return [
      { name: 'main', parameters: [...backbone.parameters(), ...decoders.parameters()] },
      { name: 'discriminator', parameters: discriminator.parameters(), active: () => this.#options.domainWeight > 0 },
    ];
  }

  prepare(batch: Batch, _generator: Generator, sources?: Record<string, Batch>): PretextBatch {
    if (!this.#geometry) throw new Error("synthetic task: create() needs the training store to render its scenes' geometry");
    const real = sources?.real?.images;
    return { inputs: batch.images, targets: this.#geometry.select(batch.indices), extra: real ? { real } : undefined };
  }

  /** Depth, normals and contours predicted for normalized images. */
  predict(images: Tensor): GeometryPrediction {
    return this.#heads(this.modules.backbone.forward(images));
  }

  #heads(features: Tensor): GeometryPrediction {
    const out = cat(
      [...this.modules.decoders].map((d) => d.forward(features)),
      1,
    );
    const [logDepth, normals, contourLogits] = out.splitWithSizes(OUTPUT_SPLIT, 1);
    return { logDepth, normals: nn.functional.normalize(normals), contourLogits };
  }

  step(batch: PretextBatch, phase: string): StepResult {
    return phase === 'discriminator' ? this.#discriminatorStep(batch) : this.#mainStep(batch);
  }

  #mainStep(batch: PretextBatch): StepResult {
    const { backbone, discriminator } = this.modules;
    const features = backbone.features(batch.inputs, [this.#domainLayer, this.#lastBlock]);
    const prediction = this.#heads(features.get(this.#lastBlock)!);
    const truth = splitGeometry(batch.targets);
    const depth = depthLoss(prediction.logDepth, truth.depth, truth.mask, this.#options.depthLoss);
    const normals = normalLoss(prediction.normals, truth.normals, truth.mask);
    const contours = balancedContourLoss(prediction.contourLogits, truth.contours);
    let loss = depth.add(normals).add(contours);
    const metrics: Record<string, Tensor> = { depthLoss: depth, normalLoss: normals, contourLoss: contours };
    if (this.#options.domainWeight > 0) {
      const domainFeatures = features.get(this.#domainLayer)!;
      // The encoder's GAN term with inverted labels: synthetic features should pass for real.
      const fooling = adversarialLoss(discriminator.forward(domainFeatures), true);
      loss = loss.add(fooling.mul(this.#options.domainWeight));
      metrics.adversarial = fooling;
      this.#syntheticFeatures.set(batch, domainFeatures.detach());
    }
    Object.assign(
      metrics,
      noGrad(() => geometryMetrics(prediction, truth)),
    );
    return { loss, metrics };
  }

  #discriminatorStep(batch: PretextBatch): StepResult {
    const real = batch.extra?.real;
    if (!real) throw new Error("synthetic task: the discriminator phase needs real images (data source 'real', e.g. --real cifar10)");
    const { backbone, discriminator } = this.modules;
    const stored = this.#syntheticFeatures.get(batch);
    const synthetic = stored && !stored.isDisposed ? stored : noGrad(() => backbone.forwardTo(batch.inputs, this.#domainLayer));
    const realFeatures = noGrad(() => backbone.forwardTo(real, this.#domainLayer));
    const n = synthetic.shape[0];
    const logits = discriminator.forward(cat([synthetic, realFeatures]));
    const [syntheticLogits, realLogits] = [logits.narrow(0, 0, n), logits.narrow(0, n, logits.shape[0] - n)];
    const loss = adversarialLoss(syntheticLogits, false).add(adversarialLoss(realLogits, true)).mul(0.5);
    const acc = cat([syntheticLogits.lt(0), realLogits.gt(0)])
      .float()
      .mean();
    return { loss, metrics: { acc } };
  }

  /** Predictions (log-depth as depth, unit normals, contour probabilities; 5 x H x W) of the synthetic samples, then of the real ones. */
  answers(batch: PretextBatch): Answer[] {
    return noGrad(() => {
      const answersOf = (images: Tensor, truth?: Geometry): ImageAnswer[] => {
        const p = this.predict(images);
        const depth = depthOf(p.logDepth);
        const maps = cat([depth, p.normals, p.contourLogits.sigmoid()], 1).unbind(0);
        const scores = truth && maskedMean(depth.sub(truth.depth).abs().div(truth.depth), truth.mask, true).toArray();
        return maps.map((image, i) => ({ image, score: scores && { name: 'absRel', value: scores[i] } }));
      };
      const real = batch.extra?.real;
      return [...answersOf(batch.inputs, splitGeometry(batch.targets)), ...(real ? answersOf(real) : [])];
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Pictures

/** Gray panels (N x 3 x H x W) of log-depth, each image stretched over its own range. */
function depthPanels(depth: Tensor): Tensor {
  const logDepth = depth.log();
  const low = logDepth.amin([1, 2, 3], true);
  const high = logDepth.amax([1, 2, 3], true);
  return logDepth.sub(low).div(high.sub(low).clamp(1e-6)).expand([-1, 3, -1, -1]);
}

const normalPanels = (normals: Tensor): Tensor => normals.add(1).mul(0.5).clamp(0, 1);
const grayPanels = (values: Tensor): Tensor => values.clamp(0, 1).expand([-1, 3, -1, -1]);

/** Row-major panels from columns of equal-sized N x 3 x H x W tensors. */
const rowsOf = (columns: Tensor[]): Tensor => stack(columns, 1).flatten(0, 1);

export const syntheticTask: PretextTask<typeof options> = {
  name: 'synthetic',
  description: 'Synthetic imagery: predict depth, surface normals and contours of rendered scenes, features adapted to real images',
  paper: 'Ren & Lee, Cross-Domain Self-supervised Multi-task Feature Learning using Synthetic Imagery, CVPR 2018',
  options,
  // Adam for both phases (betas 0.5 as usual for GANs); no augmentation, so the geometry stays aligned with the pixels.
  defaults: {
    backbone: 'resnet18-small',
    epochs: 30,
    batchSize: 64,
    optimizer: {
      main: { name: 'adam', lr: 1e-3, betas: [0.5, 0.999] },
      discriminator: { name: 'adam', lr: 2e-4, betas: [0.5, 0.999] },
    },
  },
  selection: { metric: 'main/absRel', mode: 'min' },
  collapse: { metric: 'discriminator/acc', steps: 500 },
  data: {
    sources: { real: { description: 'real images for the domain discriminator (cifar10, fashion-mnist or a folder)', default: 'cifar10' } },
  },
  create: (backbone, o, context) => new SyntheticModel(backbone, o, context),
  picture(batch, answers, display) {
    const truth = splitGeometry(batch.targets);
    const n = batch.inputs.shape[0];
    const inputs = display(batch.inputs);
    const truthColumns = [depthPanels(truth.depth), normalPanels(truth.normals), grayPanels(truth.contours)];
    if (!answers?.length) {
      return {
        panels: rowsOf([inputs, ...truthColumns]),
        captions: Array.from({ length: n }, () => ['input', 'depth', 'normals', 'contours']).flat(),
        columns: 4,
      };
    }
    const predictions = (answers as ImageAnswer[]).map((a) => a.image);
    const predictedColumns = (maps: Tensor[]) => {
      const [depth, normals, contours] = cat(maps.map((m) => m.unsqueeze(0))).splitWithSizes(OUTPUT_SPLIT, 1);
      return [depthPanels(depth), normalPanels(normals), grayPanels(contours)];
    };
    const [depth, normals, contours] = predictedColumns(predictions.slice(0, n));
    const rows = [rowsOf([inputs, depth, truthColumns[0], normals, truthColumns[1], contours, truthColumns[2]])];
    const captions = (answers as ImageAnswer[])
      .slice(0, n)
      .flatMap((a) => [
        a.score ? `${a.score.name} ${a.score.value.toFixed(3)}` : 'input',
        'depth',
        'true depth',
        'normals',
        'true normals',
        'contours',
        'true contours',
      ]);
    const real = batch.extra?.real;
    if (real && predictions.length > n) {
      const [realDepth, realNormals, realContours] = predictedColumns(predictions.slice(n));
      const blank = realDepth.mul(0);
      rows.push(rowsOf([display(real), realDepth, blank, realNormals, blank, realContours, blank]));
      captions.push(...Array.from({ length: real.shape[0] }, () => ['real input', 'depth', '', 'normals', '', 'contours', '']).flat());
    }
    return { panels: cat(rows), captions, columns: 7 };
  },
};
