// torch.nn.functional with options objects; each function checks its options and names the bad one.
import type { DType } from '../dtype.js';
import * as raw from '../generated/functions.js';
import type { Tensor } from '../tensor.js';
import type { Reduction } from '../dtype.js';

type IntOrPair = number | [number, number];

function ints(op: string, name: string, value: IntOrPair | number[] | undefined, fallback: number, min: number): number[] {
  const list = value === undefined ? [fallback] : typeof value === 'number' ? [value] : value;
  for (const v of list) {
    if (!Number.isInteger(v) || v < min) {
      throw new RangeError(
        `${op}: '${name}' must be ${min > 0 ? 'a positive' : 'a non-negative'} integer or pair of them, got ${JSON.stringify(value)}`,
      );
    }
  }
  return list;
}

/** A positive output size, one number standing for both sides. */
function outputSize2d(op: string, name: string, value: IntOrPair): number[] {
  const size = ints(op, name, value, 1, 1);
  return size.length === 1 ? [size[0], size[0]] : size;
}

function prob(op: string, p: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${op}: 'p' must be in [0, 1], got ${p}`);
  return p;
}

export interface ConvOptions {
  stride?: IntOrPair;
  padding?: IntOrPair;
  dilation?: IntOrPair;
  groups?: number;
}

export function conv2d(input: Tensor, weight: Tensor, bias?: Tensor | null, options: ConvOptions = {}): Tensor {
  const op = 'conv2d';
  return raw.conv2d(
    input,
    weight,
    bias ?? null,
    ints(op, 'stride', options.stride, 1, 1),
    ints(op, 'padding', options.padding, 0, 0),
    ints(op, 'dilation', options.dilation, 1, 1),
    ints(op, 'groups', options.groups, 1, 1)[0],
  );
}

export function convTranspose2d(
  input: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  options: ConvOptions & { outputPadding?: IntOrPair } = {},
): Tensor {
  const op = 'convTranspose2d';
  return raw.convTranspose2d(
    input,
    weight,
    bias ?? null,
    ints(op, 'stride', options.stride, 1, 1),
    ints(op, 'padding', options.padding, 0, 0),
    ints(op, 'outputPadding', options.outputPadding, 0, 0),
    ints(op, 'groups', options.groups, 1, 1)[0],
    ints(op, 'dilation', options.dilation, 1, 1),
  );
}

export function linear(input: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return raw.linear(input, weight, bias ?? null);
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}

export function batchNorm(input: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, options: BatchNormOptions = {}): Tensor {
  const eps = options.eps ?? 1e-5;
  if (!(eps > 0)) throw new RangeError(`batchNorm: 'eps' must be positive, got ${eps}`);
  const training = options.training ?? false;
  if (!training && (!runningMean || !runningVar)) throw new Error('batchNorm: evaluation mode needs runningMean and runningVar');
  return raw.batchNorm(
    input,
    options.weight ?? null,
    options.bias ?? null,
    runningMean,
    runningVar,
    training,
    options.momentum ?? 0.1,
    eps,
  );
}

export function groupNorm(
  input: Tensor,
  numGroups: number,
  options: { weight?: Tensor | null; bias?: Tensor | null; eps?: number } = {},
): Tensor {
  return raw.groupNorm(
    input,
    ints('groupNorm', 'numGroups', numGroups, 1, 1)[0],
    options.weight ?? null,
    options.bias ?? null,
    options.eps ?? 1e-5,
  );
}

export function layerNorm(
  input: Tensor,
  normalizedShape: number[],
  options: { weight?: Tensor | null; bias?: Tensor | null; eps?: number } = {},
): Tensor {
  return raw.layerNorm(input, normalizedShape, options.weight ?? null, options.bias ?? null, options.eps ?? 1e-5);
}

export interface PoolOptions {
  stride?: IntOrPair;
  padding?: IntOrPair;
  ceilMode?: boolean;
}

export function maxPool2d(input: Tensor, kernelSize: IntOrPair, options: PoolOptions & { dilation?: IntOrPair } = {}): Tensor {
  const op = 'maxPool2d';
  const kernel = ints(op, 'kernelSize', kernelSize, 1, 1);
  const stride = options.stride === undefined ? kernel : ints(op, 'stride', options.stride, 1, 1);
  return raw.maxPool2d(
    input,
    kernel,
    stride,
    ints(op, 'padding', options.padding, 0, 0),
    ints(op, 'dilation', options.dilation, 1, 1),
    options.ceilMode ?? false,
  );
}

export function avgPool2d(input: Tensor, kernelSize: IntOrPair, options: PoolOptions & { countIncludePad?: boolean } = {}): Tensor {
  const op = 'avgPool2d';
  const kernel = ints(op, 'kernelSize', kernelSize, 1, 1);
  const stride = options.stride === undefined ? kernel : ints(op, 'stride', options.stride, 1, 1);
  return raw.avgPool2d(
    input,
    kernel,
    stride,
    ints(op, 'padding', options.padding, 0, 0),
    options.ceilMode ?? false,
    options.countIncludePad ?? true,
  );
}

export function adaptiveAvgPool2d(input: Tensor, outputSize: IntOrPair): Tensor {
  return raw.adaptiveAvgPool2d(input, outputSize2d('adaptiveAvgPool2d', 'outputSize', outputSize));
}

export interface InterpolateOptions {
  size?: IntOrPair;
  scaleFactor?: number;
  mode?: 'nearest' | 'bilinear' | 'bicubic';
  alignCorners?: boolean;
}

/**
 * Resizes a 4-d NCHW batch, to `size` or by `scaleFactor`. As in PyTorch, a scale factor (not the
 * ratio of the rounded sizes) maps output coordinates to input ones.
 */
export function interpolate(input: Tensor, options: InterpolateOptions): Tensor {
  const [, , h, w] = input.shape;
  if (input.ndim !== 4) throw new RangeError(`interpolate: 'input' must be 4-d NCHW, got shape [${input.shape}]`);
  let size: number[];
  let scale: number | null = null;
  if (options.size !== undefined) size = outputSize2d('interpolate', 'size', options.size);
  else if (options.scaleFactor !== undefined && options.scaleFactor > 0) {
    scale = options.scaleFactor;
    size = [Math.floor(h * scale), Math.floor(w * scale)];
  } else throw new RangeError("interpolate: give 'size' or a positive 'scaleFactor'");
  const mode = options.mode ?? 'nearest';
  switch (mode) {
    case 'nearest':
      if (options.alignCorners !== undefined) throw new Error("interpolate: 'alignCorners' only applies to bilinear and bicubic");
      return raw.upsampleNearest2d(input, size, scale, scale);
    case 'bilinear':
      return raw.upsampleBilinear2d(input, size, options.alignCorners ?? false, scale, scale);
    case 'bicubic':
      return raw.upsampleBicubic2d(input, size, options.alignCorners ?? false, scale, scale);
    default:
      throw new RangeError(`interpolate: 'mode' must be nearest, bilinear or bicubic, got '${String(mode)}'`);
  }
}

export function pixelShuffle(input: Tensor, upscaleFactor: number): Tensor {
  return raw.pixelShuffle(input, ints('pixelShuffle', 'upscaleFactor', upscaleFactor, 1, 1)[0]);
}

export function dropout(input: Tensor, p = 0.5, training = true): Tensor {
  return raw.dropout(input, prob('dropout', p), training);
}

export function dropout2d(input: Tensor, p = 0.5, training = true): Tensor {
  return raw.featureDropout(input, prob('dropout2d', p), training);
}

export const relu = (input: Tensor): Tensor => input.relu();
export const sigmoid = (input: Tensor): Tensor => input.sigmoid();
export const tanh = (input: Tensor): Tensor => input.tanh();
export const silu = (input: Tensor): Tensor => raw.silu(input);

export function leakyRelu(input: Tensor, negativeSlope = 0.01): Tensor {
  return raw.leakyRelu(input, negativeSlope);
}

export function gelu(input: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  if (approximate !== 'none' && approximate !== 'tanh')
    throw new RangeError(`gelu: 'approximate' must be 'none' or 'tanh', got '${String(approximate)}'`);
  return raw.gelu(input, approximate);
}

export function elu(input: Tensor, alpha = 1): Tensor {
  return raw.elu(input, alpha);
}

export function softmax(input: Tensor, dim: number, dtype?: DType): Tensor {
  return raw.softmax(input, dim, dtype ?? null);
}

export function logSoftmax(input: Tensor, dim: number, dtype?: DType): Tensor {
  return raw.logSoftmax(input, dim, dtype ?? null);
}

export interface PadOptions {
  mode?: 'constant' | 'reflect' | 'replicate';
  value?: number;
}

/** Pads the last dimensions; `pad` lists (left, right, top, bottom, ...) as in PyTorch. */
export function pad(input: Tensor, padding: number[], options: PadOptions = {}): Tensor {
  if (padding.length % 2 !== 0) throw new RangeError(`pad: 'padding' must have an even length, got ${padding.length}`);
  const mode = options.mode ?? 'constant';
  if (mode === 'constant') return raw.constantPadNd(input, padding, options.value ?? 0);
  if (padding.length !== 4) throw new RangeError(`pad: ${mode} padding takes 4 values (left, right, top, bottom)`);
  ints('pad', 'padding', padding, 0, 0);
  if (mode === 'reflect') return raw.reflectionPad2d(input, padding);
  if (mode === 'replicate') return raw.replicationPad2d(input, padding);
  throw new RangeError(`pad: 'mode' must be constant, reflect or replicate, got '${String(mode)}'`);
}

export interface LossOptions {
  reduction?: Reduction;
}

function reduction(op: string, options: LossOptions): Reduction {
  const r = options.reduction ?? 'mean';
  if (r !== 'mean' && r !== 'sum' && r !== 'none') throw new RangeError(`${op}: 'reduction' must be mean, sum or none, got '${String(r)}'`);
  return r;
}

export interface CrossEntropyOptions extends LossOptions {
  weight?: Tensor;
  ignoreIndex?: number;
  labelSmoothing?: number;
}

/** Cross entropy over logits; targets are class indices (int64) or class probabilities. */
export function crossEntropy(input: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const smoothing = options.labelSmoothing ?? 0;
  if (!(smoothing >= 0 && smoothing <= 1)) throw new RangeError(`crossEntropy: 'labelSmoothing' must be in [0, 1], got ${smoothing}`);
  return raw.crossEntropyLoss(
    input,
    target,
    options.weight ?? null,
    reduction('crossEntropy', options),
    options.ignoreIndex ?? -100,
    smoothing,
  );
}

export function nllLoss(input: Tensor, target: Tensor, options: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor {
  return raw.nllLoss(input, target, options.weight ?? null, reduction('nllLoss', options), options.ignoreIndex ?? -100);
}

export function mseLoss(input: Tensor, target: Tensor, options: LossOptions = {}): Tensor {
  return raw.mseLoss(input, target, reduction('mseLoss', options));
}

export function l1Loss(input: Tensor, target: Tensor, options: LossOptions = {}): Tensor {
  return raw.l1Loss(input, target, reduction('l1Loss', options));
}

export function smoothL1Loss(input: Tensor, target: Tensor, options: LossOptions & { beta?: number } = {}): Tensor {
  const beta = options.beta ?? 1;
  if (!(beta >= 0)) throw new RangeError(`smoothL1Loss: 'beta' must be non-negative, got ${beta}`);
  return raw.smoothL1Loss(input, target, reduction('smoothL1Loss', options), beta);
}

export function bceWithLogits(input: Tensor, target: Tensor, options: LossOptions & { weight?: Tensor; posWeight?: Tensor } = {}): Tensor {
  return raw.binaryCrossEntropyWithLogits(
    input,
    target,
    options.weight ?? null,
    options.posWeight ?? null,
    reduction('bceWithLogits', options),
  );
}

export function binaryCrossEntropy(input: Tensor, target: Tensor, options: LossOptions & { weight?: Tensor } = {}): Tensor {
  return raw.binaryCrossEntropy(input, target, options.weight ?? null, reduction('binaryCrossEntropy', options));
}

export function cosineSimilarity(x1: Tensor, x2: Tensor, options: { dim?: number; eps?: number } = {}): Tensor {
  return raw.cosineSimilarity(x1, x2, options.dim ?? 1, options.eps ?? 1e-8);
}

/** Divides by the p-norm along `dim`, clamped below by eps, as torch.nn.functional.normalize. */
export function normalize(input: Tensor, options: { p?: number; dim?: number; eps?: number } = {}): Tensor {
  const norm = input.norm(options.p ?? 2, [options.dim ?? 1], true).clamp(options.eps ?? 1e-12, null);
  return input.div(norm);
}

export function affineGrid(theta: Tensor, size: number[], alignCorners = false): Tensor {
  return raw.affineGridGenerator(theta, size, alignCorners);
}

const interpolationModes = { bilinear: 0, nearest: 1, bicubic: 2 } as const;
const paddingModes = { zeros: 0, border: 1, reflection: 2 } as const;

export function gridSample(
  input: Tensor,
  grid: Tensor,
  options: { mode?: keyof typeof interpolationModes; paddingMode?: keyof typeof paddingModes; alignCorners?: boolean } = {},
): Tensor {
  const mode = interpolationModes[options.mode ?? 'bilinear'];
  const padding = paddingModes[options.paddingMode ?? 'zeros'];
  if (mode === undefined) throw new RangeError(`gridSample: 'mode' must be bilinear, nearest or bicubic`);
  if (padding === undefined) throw new RangeError(`gridSample: 'paddingMode' must be zeros, border or reflection`);
  return raw.gridSampler(input, grid, mode, padding, options.alignCorners ?? false);
}
