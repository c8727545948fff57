// Conv classifier on frozen feature maps, RotNet's protocol (Gidaris et al. 2018, CIFAR-10): a
// freshly initialized NIN block (3x3 then two 1x1 conv-BN-ReLU units), global average pooling and a
// linear layer, trained on the maps of a frozen block.
import { manualSeed, nn, type Tensor } from '@pretext/torch';
import { convBnRelu } from '../models/backbone.js';
import { PooledClassifier } from '../models/heads.js';
import { fitClassifier, predictClasses, type FitOptions } from './fit.js';
import { checkTrainTest, ComputeMeter, probeResult, type EvalResult, type LabeledFeatures } from './metrics.js';

export interface ConvProbeOptions extends FitOptions {
  /** Channels of the conv block (default 192, as NIN). */
  width?: number;
}

export const CONV_DEFAULTS = { epochs: 15, batchSize: 128, lr: 0.1, weightDecay: 5e-4, optimizer: 'sgd', minSteps: 300 } as const;

export class ConvClassifier extends nn.Module {
  block: nn.Sequential;
  head: PooledClassifier;

  constructor(inChannels: number, classes: number, width = 192) {
    super();
    this.block = new nn.Sequential(convBnRelu(inChannels, width, 3), convBnRelu(width, width, 1), convBnRelu(width, width, 1));
    this.head = new PooledClassifier(width, classes);
  }

  forward(maps: Tensor): Tensor {
    return this.head.forward(this.block.forward(maps));
  }
}

/** Trains a ConvClassifier on train maps (N x C x H x W) and reports on test maps. */
export function convProbe(train: LabeledFeatures, test: LabeledFeatures, options: ConvProbeOptions = {}): EvalResult {
  checkTrainTest(train, test);
  if (train.features.ndim !== 4)
    throw new Error(`conv probe: needs feature maps N x C x H x W (pool 'none'), got [${train.features.shape}]`);
  const meter = new ComputeMeter();
  manualSeed(options.seed ?? 0);
  const width = options.width ?? 192;
  const model = new ConvClassifier(train.features.shape[1], train.classNames.length, width);
  const { epochs, losses } = fitClassifier(model, train.features, train.labels, { ...options, defaults: CONV_DEFAULTS });
  const predicted = predictClasses(model, test.features, 256);
  return probeResult('conv', predicted, train, test, meter.read(epochs), {
    ...CONV_DEFAULTS,
    ...options,
    width,
    mapShape: train.features.shape.slice(1),
    epochs,
    finalLoss: losses.at(-1),
  });
}
