// Standard layers, initialized as PyTorch initializes them.
import { empty, ones, zeros } from '../generated/functions.js';
import { noGrad } from '../autograd.js';
import { isMemoryFormat, type MemoryFormat } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import * as F from './functional.js';
import { resetLinearLike } from './init.js';
import { Module, Parameter } from './module.js';

type IntOrPair = number | [number, number];
const pair = (v: IntOrPair): [number, number] => (typeof v === 'number' ? [v, v] : v);

function positiveInt(layer: string, name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${layer}: '${name}' must be a positive integer, got ${v}`);
  return v;
}

export interface Conv2dOptions extends F.ConvOptions {
  bias?: boolean;
}

export interface Conv2dLayerOptions extends Conv2dOptions {
  /**
   * Layout of the weight, which oneDNN follows for the output. Default 'channelsLast': a third
   * faster on CPU than NCHW, and the output keeps its NCHW shape (use reshape, not view, on it).
   */
  memoryFormat?: MemoryFormat;
}

export class Conv2d extends Module {
  weight: Parameter;
  bias: Parameter | undefined;
  readonly options: F.ConvOptions;

  constructor(inChannels: number, outChannels: number, kernelSize: IntOrPair, options: Conv2dLayerOptions = {}) {
    super();
    const memoryFormat = options.memoryFormat ?? 'channelsLast';
    if (!isMemoryFormat(memoryFormat))
      throw new TypeError(`Conv2d: 'memoryFormat' must be 'contiguous' or 'channelsLast', got ${JSON.stringify(memoryFormat)}`);
    const groups = positiveInt('Conv2d', 'groups', options.groups ?? 1);
    positiveInt('Conv2d', 'inChannels', inChannels);
    positiveInt('Conv2d', 'outChannels', outChannels);
    if (inChannels % groups || outChannels % groups)
      throw new RangeError(`Conv2d: 'groups' (${groups}) must divide inChannels and outChannels`);
    const [kh, kw] = pair(kernelSize).map((k) => positiveInt('Conv2d', 'kernelSize', k));
    this.weight = new Parameter(empty([outChannels, inChannels / groups, kh, kw]));
    this.bias = options.bias === false ? undefined : new Parameter(empty([outChannels]));
    this.options = { stride: options.stride, padding: options.padding, dilation: options.dilation, groups };
    resetLinearLike(this.weight, this.bias);
    // The parameters are made contiguous; only the other format needs a conversion.
    if (memoryFormat === 'channelsLast') this.to('channelsLast');
  }

  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, this.options);
  }
}

export class ConvTranspose2d extends Module {
  weight: Parameter;
  bias: Parameter | undefined;
  readonly options: F.ConvOptions & { outputPadding?: IntOrPair };

  constructor(inChannels: number, outChannels: number, kernelSize: IntOrPair, options: Conv2dOptions & { outputPadding?: IntOrPair } = {}) {
    super();
    const groups = positiveInt('ConvTranspose2d', 'groups', options.groups ?? 1);
    const [kh, kw] = pair(kernelSize).map((k) => positiveInt('ConvTranspose2d', 'kernelSize', k));
    this.weight = new Parameter(empty([inChannels, outChannels / groups, kh, kw]));
    this.bias = options.bias === false ? undefined : new Parameter(empty([outChannels]));
    this.options = {
      stride: options.stride,
      padding: options.padding,
      dilation: options.dilation,
      groups,
      outputPadding: options.outputPadding,
    };
    resetLinearLike(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    return F.convTranspose2d(x, this.weight, this.bias, this.options);
  }
}

export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | undefined;

  constructor(inFeatures: number, outFeatures: number, options: { bias?: boolean } = {}) {
    super();
    this.weight = new Parameter(
      empty([positiveInt('Linear', 'outFeatures', outFeatures), positiveInt('Linear', 'inFeatures', inFeatures)]),
    );
    this.bias = options.bias === false ? undefined : new Parameter(empty([outFeatures]));
    resetLinearLike(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export interface BatchNormOptions {
  eps?: number;
  momentum?: number;
  affine?: boolean;
  trackRunningStats?: boolean;
}

/** What BatchNorm1d, BatchNorm2d and SyncBatchNorm share, as PyTorch's _BatchNorm. */
export abstract class BatchNormBase extends Module {
  weight: Parameter | undefined;
  bias: Parameter | undefined;
  readonly eps: number;
  readonly momentum: number;
  readonly trackRunningStats: boolean;

  constructor(
    readonly numFeatures: number,
    private readonly inputDims: number[],
    options: BatchNormOptions = {},
  ) {
    super();
    positiveInt(this.constructor.name, 'numFeatures', numFeatures);
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    this.trackRunningStats = options.trackRunningStats ?? true;
    if (options.affine ?? true) {
      this.weight = new Parameter(ones([numFeatures]));
      this.bias = new Parameter(zeros([numFeatures]));
    }
    if (this.trackRunningStats) {
      this.registerBuffer('running_mean', zeros([numFeatures]));
      this.registerBuffer('running_var', ones([numFeatures]));
      this.registerBuffer('num_batches_tracked', zeros([], 'int64'));
    }
  }

  get runningMean(): Tensor | undefined {
    return this.trackRunningStats ? this.buffer('running_mean') : undefined;
  }

  get runningVar(): Tensor | undefined {
    return this.trackRunningStats ? this.buffer('running_var') : undefined;
  }

  forward(x: Tensor): Tensor {
    if (!this.inputDims.includes(x.ndim)) {
      throw new RangeError(`${this.constructor.name}: expected a ${this.inputDims.join('-d or ')}-d input, got shape [${x.shape}]`);
    }
    if (this.training && this.trackRunningStats) noGrad(() => this.buffer('num_batches_tracked').add_(1));
    return this.normalize(x);
  }

  protected normalize(x: Tensor): Tensor {
    return F.batchNorm(x, this.runningMean ?? null, this.runningVar ?? null, {
      weight: this.weight,
      bias: this.bias,
      training: this.training || !this.trackRunningStats,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}

export class BatchNorm1d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super(numFeatures, [2, 3], options);
  }
}

export class BatchNorm2d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super(numFeatures, [4], options);
  }
}

export class GroupNorm extends Module {
  weight: Parameter | undefined;
  bias: Parameter | undefined;

  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly options: { eps?: number; affine?: boolean } = {},
  ) {
    super();
    if (numChannels % positiveInt('GroupNorm', 'numGroups', numGroups))
      throw new RangeError(`GroupNorm: 'numGroups' (${numGroups}) must divide numChannels (${numChannels})`);
    if (options.affine ?? true) {
      this.weight = new Parameter(ones([numChannels]));
      this.bias = new Parameter(zeros([numChannels]));
    }
  }

  forward(x: Tensor): Tensor {
    return F.groupNorm(x, this.numGroups, { weight: this.weight, bias: this.bias, eps: this.options.eps });
  }
}

export class LayerNorm extends Module {
  weight: Parameter | undefined;
  bias: Parameter | undefined;
  readonly normalizedShape: number[];

  constructor(
    normalizedShape: number | number[],
    readonly options: { eps?: number; elementwiseAffine?: boolean } = {},
  ) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
    if (options.elementwiseAffine ?? true) {
      this.weight = new Parameter(ones(this.normalizedShape));
      this.bias = new Parameter(zeros(this.normalizedShape));
    }
  }

  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, { weight: this.weight, bias: this.bias, eps: this.options.eps });
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: 'p' must be in [0, 1], got ${p}`);
  }

  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
}

export class Dropout2d extends Dropout {
  override forward(x: Tensor): Tensor {
    return F.dropout2d(x, this.p, this.training);
  }
}

/** A layer made from a stateless function of one tensor. */
export class Lambda extends Module {
  constructor(
    readonly name: string,
    private readonly fn: (x: Tensor) => Tensor,
  ) {
    super();
  }

  forward(x: Tensor): Tensor {
    return this.fn(x);
  }
}

/** With inplace, overwrites its input, as PyTorch's ReLU(inplace=True): right after a BatchNorm
 * or an add, whose outputs autograd does not keep, it saves a buffer and a pass over memory. */
export const ReLU = (options: { inplace?: boolean } = {}) => new Lambda('ReLU', options.inplace ? (x) => x.relu_() : F.relu);
export const Sigmoid = () => new Lambda('Sigmoid', F.sigmoid);
export const Tanh = () => new Lambda('Tanh', F.tanh);
export const GELU = (approximate: 'none' | 'tanh' = 'none') => new Lambda('GELU', (x) => F.gelu(x, approximate));
export const LeakyReLU = (negativeSlope = 0.01) => new Lambda('LeakyReLU', (x) => F.leakyRelu(x, negativeSlope));
export const SiLU = () => new Lambda('SiLU', F.silu);
export const Identity = () => new Lambda('Identity', (x) => x);
export const Softmax = (dim: number) => new Lambda('Softmax', (x) => F.softmax(x, dim));
export const Flatten = (startDim = 1, endDim = -1) => new Lambda('Flatten', (x) => x.flatten(startDim, endDim));
export const MaxPool2d = (kernelSize: IntOrPair, options: F.PoolOptions = {}) =>
  new Lambda('MaxPool2d', (x) => F.maxPool2d(x, kernelSize, options));
export const AvgPool2d = (kernelSize: IntOrPair, options: F.PoolOptions = {}) =>
  new Lambda('AvgPool2d', (x) => F.avgPool2d(x, kernelSize, options));
export const AdaptiveAvgPool2d = (outputSize: IntOrPair) => new Lambda('AdaptiveAvgPool2d', (x) => F.adaptiveAvgPool2d(x, outputSize));
export const PixelShuffle = (upscaleFactor: number) => new Lambda('PixelShuffle', (x) => F.pixelShuffle(x, upscaleFactor));

/** Children indexed '0', '1', ... as PyTorch's ModuleList. */
export class ModuleList<M extends Module<any, any> = Module> extends Module {
  [index: number]: M;
  length = 0;

  constructor(modules: M[] = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(module: M): this {
    this[this.length++] = module;
    return this;
  }

  *[Symbol.iterator](): Iterator<M> {
    for (let i = 0; i < this.length; i++) yield this[i];
  }

  forward(_x: Tensor): Tensor {
    throw new Error('ModuleList has no forward; iterate over its modules');
  }
}

export class Sequential extends ModuleList<Module> {
  constructor(...modules: Module[]) {
    super(modules);
  }

  override forward(x: Tensor): Tensor {
    let out = x;
    for (const m of this) out = m.forward(out);
    return out;
  }
}
