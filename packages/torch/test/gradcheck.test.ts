// Autograd against finite differences for every differentiable op in native/ops.mjs, plus
// higher-order gradients, retained graphs, detach and noGrad.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as torch from '../src/index.js';
import type { Tensor } from '../src/index.js';
import type { GradcheckFn, GradcheckOptions } from '../src/testing/gradcheck.js';

const { nn, testing } = torch;
const F = nn.functional;

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const opTable = (await import(pathToFileURL(join(packageRoot, 'native', 'ops.mjs')).href)) as Record<string, [string, string?][]>;
const tableOps = [...opTable.tensorOps, ...opTable.functionOps, ...opTable.nnOps].map(([sig]) => /^(\w+)\(/.exec(sig)![1]);

// Inputs are drawn from one generator, reseeded per case, so each case is reproducible alone.
const gen = new torch.Generator(0);
/** A float64 leaf from N(0, 1) that requires grad. */
const x = (...shape: number[]): Tensor => torch.randn(shape, gen, 'float64').requiresGrad_();
/** A float64 leaf uniform in [lo, hi) that requires grad (for logs, roots, divisors). */
const u = (lo: number, hi: number, ...shape: number[]): Tensor =>
  torch
    .noGrad(() =>
      torch
        .rand(shape, gen, 'float64')
        .mul(hi - lo)
        .add(lo),
    )
    .requiresGrad_();
/** Constants: int64 indices, bool masks, float64 data without grad. */
const long = (values: number[] | number[][], shape?: number[]): Tensor => {
  const t = torch.tensor(values, { dtype: 'int64' });
  return shape ? t.reshape(shape) : t;
};
const mask = (values: boolean[] | boolean[][]): Tensor => torch.tensor(values, { dtype: 'bool' });
const c = (...shape: number[]): Tensor => torch.randn(shape, gen, 'float64');
const seeded =
  (fn: GradcheckFn): GradcheckFn =>
  (...xs) => {
    torch.manualSeed(7); // dropout draws the same mask at every evaluation
    return fn(...xs);
  };

interface Case {
  /** The op table entry this case exercises. */
  op: string;
  name: string;
  inputs: () => Tensor[];
  fn: GradcheckFn;
  options?: GradcheckOptions;
}

const cases: Case[] = [];
const add = (op: string, name: string, inputs: () => Tensor[], fn: GradcheckFn, options?: GradcheckOptions): void => {
  cases.push({ op, name, inputs, fn, options });
};

// conversions and copies
add(
  'to_dtype',
  'through float32 and back',
  () => [x(3, 4)],
  (a) => a.toDtype('float32').toDtype('float64'),
  { eps: 1e-2, atol: 1e-4 },
);
add(
  'to_device',
  'cpu',
  () => [x(3, 4)],
  (a) => a.toDevice('cpu').mul(2),
);
add(
  'contiguous',
  'of a transpose',
  () => [x(3, 4)],
  (a) => a.t().contiguous(),
);
add(
  'channels_last',
  '4-d',
  () => [x(2, 3, 2, 2)],
  (a) => a.channelsLast().mul(a),
);
add(
  'clone',
  'clone',
  () => [x(3, 4)],
  (a) => a.clone().mul(3),
);

// views and indexing
add(
  'reshape',
  'reshape',
  () => [x(3, 4)],
  (a) => a.reshape([2, 6]).mul(a.reshape([2, 6])),
);
add(
  'view',
  'view',
  () => [x(3, 4)],
  (a) => a.view([4, 3]).cumsum(0),
);
add(
  'permute',
  'permute',
  () => [x(2, 3, 4)],
  (a) => a.permute([2, 0, 1]).cumsum(1),
);
add(
  'transpose',
  'transpose',
  () => [x(2, 3, 4)],
  (a) => a.transpose(0, 2).cumsum(0),
);
add(
  't',
  't',
  () => [x(3, 4)],
  (a) => a.t().matmul(a),
);
add(
  'flatten',
  'flatten',
  () => [x(2, 3, 4)],
  (a) => a.flatten(1).cumsum(1),
);
add(
  'squeeze',
  'all dims',
  () => [x(3, 1, 4)],
  (a) => a.squeeze().cumsum(0),
);
add(
  'squeeze',
  'one dim',
  () => [x(3, 1, 1)],
  (a) => a.squeeze(1).cumsum(0),
);
add(
  'unsqueeze',
  'unsqueeze',
  () => [x(3, 4)],
  (a) => a.unsqueeze(1).expand([3, 2, 4]).cumsum(1),
);
add(
  'narrow',
  'narrow',
  () => [x(5, 4)],
  (a) => a.narrow(0, 1, 3),
);
add(
  'slice',
  'with step',
  () => [x(7, 3)],
  (a) => a.slice(0, 1, 6, 2),
);
add(
  'slice',
  'open ends',
  () => [x(3, 7)],
  (a) => a.slice(1, null, -2),
);
add(
  'select',
  'select',
  () => [x(3, 4)],
  (a) => a.select(1, 2),
);
add(
  'index_select',
  'repeated indices',
  () => [x(4, 3), long([0, 2, 2, 3, 0])],
  (a, i) => a.indexSelect(0, i),
);
add(
  'index',
  'long indices',
  () => [x(5, 2), long([4, 0, 4])],
  (a, i) => a.index(i),
);
add(
  'index',
  'bool mask',
  () => [x(4), mask([true, false, true, true])],
  (a, m) => a.index(m),
);
add(
  'index_put_',
  'accumulate',
  () => [x(5, 2), long([1, 3, 1]), x(3, 2)],
  (a, i, v) => a.clone().indexPut_(i, v, true),
);
add(
  'index_put_',
  'assign',
  () => [x(5, 2), long([4, 0]), x(2, 2)],
  (a, i, v) => a.clone().indexPut_(i, v, false),
);
add(
  'gather',
  'gather',
  () => [
    x(3, 4),
    long([
      [0, 3],
      [1, 1],
      [2, 0],
    ]),
  ],
  (a, i) => a.gather(1, i),
);
add(
  'scatter',
  'tensor src',
  () => [
    x(3, 4),
    long([
      [3, 0],
      [1, 2],
      [0, 3],
    ]),
    x(3, 2),
  ],
  (a, i, s) => a.scatter(1, i, s),
);
add(
  'scatter',
  'scalar src',
  () => [
    x(3, 4),
    long([
      [3, 0],
      [1, 2],
      [0, 3],
    ]),
  ],
  (a, i) => a.scatter(1, i, 0.5),
);
add(
  'scatter_add',
  'duplicates',
  () => [
    x(3, 4),
    long([
      [3, 3],
      [1, 2],
      [0, 0],
    ]),
    x(3, 2),
  ],
  (a, i, s) => a.scatterAdd(1, i, s),
);
add(
  'masked_fill',
  'scalar value',
  () => [
    x(2, 3),
    mask([
      [true, false, true],
      [false, false, true],
    ]),
  ],
  (a, m) => a.maskedFill(m, -2),
);
add(
  'masked_fill',
  '0-d tensor value',
  () => [
    x(2, 3),
    x(),
    mask([
      [true, false, true],
      [false, false, true],
    ]),
  ],
  (a, v, m) => a.maskedFill(m, v),
);
add(
  'masked_fill_',
  'in place on a copy',
  () => [
    x(2, 3),
    mask([
      [false, true, true],
      [true, false, false],
    ]),
  ],
  (a, m) => a.clone().maskedFill_(m, 1.5),
);
add(
  'masked_select',
  'masked_select',
  () => [
    x(2, 3),
    mask([
      [false, true, true],
      [true, false, true],
    ]),
  ],
  (a, m) => a.maskedSelect(m),
);
add(
  'split',
  'split',
  () => [x(5, 2)],
  (a) => a.split(2, 0),
);
add(
  'split_with_sizes',
  'split_with_sizes',
  () => [x(2, 6)],
  (a) => a.splitWithSizes([1, 3, 2], 1).map((p, i) => p.mul(i + 1)),
);
add(
  'chunk',
  'chunk',
  () => [x(7, 2)],
  (a) => a.chunk(3, 0),
);
add(
  'unbind',
  'unbind',
  () => [x(3, 2)],
  (a) => a.unbind(0).map((p, i) => p.mul(i + 1)),
);
add(
  'flip',
  'flip',
  () => [x(3, 4)],
  (a) => a.flip([0, 1]).cumsum(1),
);
add(
  'rot90',
  'k=1',
  () => [x(3, 4)],
  (a) => a.rot90().cumsum(0),
);
add(
  'rot90',
  'k=-1 on dims [1, 2]',
  () => [x(2, 3, 4)],
  (a) => a.rot90(-1, [1, 2]).cumsum(1),
);
add(
  'roll',
  'roll',
  () => [x(3, 4)],
  (a) => a.roll([1, -2], [0, 1]).cumsum(1),
);
add(
  'expand',
  'expand',
  () => [x(3, 1)],
  (a) => a.expand([3, 4]).cumsum(1),
);
add(
  'expand_as',
  'expand_as',
  () => [x(1, 4), c(3, 4)],
  (a, b) => a.expandAs(b).mul(b),
);
add(
  'repeat',
  'repeat',
  () => [x(2, 3)],
  (a) => a.repeat([2, 1, 2]).cumsum(2),
);
add(
  'repeat_interleave',
  'with dim',
  () => [x(2, 3)],
  (a) => a.repeatInterleave(2, 1).cumsum(1),
);
add(
  'repeat_interleave',
  'flattened',
  () => [x(2, 3)],
  (a) => a.repeatInterleave(3).cumsum(0),
);
add(
  'unfold',
  'overlapping windows',
  () => [x(2, 7)],
  (a) => a.unfold(1, 3, 2).cumsum(2),
);
add(
  'movedim',
  'movedim',
  () => [x(2, 3, 4)],
  (a) => a.movedim([0, 1], [2, 0]).cumsum(0),
);
add(
  'tril',
  'tril',
  () => [x(4, 4)],
  (a) => a.tril(-1).add(a.tril(1)),
);
add(
  'triu',
  'triu',
  () => [x(4, 3)],
  (a) => a.triu().add(a.triu(1)),
);
add(
  'diag',
  'vector to matrix',
  () => [x(3)],
  (a) => a.diag(1),
);
add(
  'diag',
  'matrix to vector',
  () => [x(3, 4)],
  (a) => a.diag(-1),
);

// arithmetic
add(
  'add',
  'broadcast tensor with alpha',
  () => [x(3, 4), x(4)],
  (a, b) => a.add(b, 2.5).mul(a),
);
add(
  'add',
  'scalar',
  () => [x(3)],
  (a) => a.add(1.5).mul(a),
);
add(
  'sub',
  'broadcast tensor with alpha',
  () => [x(3, 4), x(3, 1)],
  (a, b) => a.sub(b, 0.5).mul(a),
);
add(
  'rsub',
  'tensor',
  () => [x(3), x(3)],
  (a, b) => a.rsub(b, 2).mul(a),
);
add(
  'rsub',
  'scalar',
  () => [x(3)],
  (a) => a.rsub(1).mul(a),
);
add(
  'mul',
  'broadcast tensor',
  () => [x(2, 3), x(2, 1)],
  (a, b) => a.mul(b),
);
add(
  'mul',
  'scalar',
  () => [x(3)],
  (a) => a.mul(-1.5).mul(a),
);
add(
  'div',
  'tensor',
  () => [x(2, 3), u(0.5, 2, 2, 3)],
  (a, b) => a.div(b),
);
add(
  'div',
  'tensor with negative divisor',
  () => [x(3), u(-2, -0.5, 3)],
  (a, b) => a.div(b),
);
add(
  'div',
  'scalar',
  () => [x(3)],
  (a) => a.div(0.7).mul(a),
);
add(
  'div',
  'rounding mode trunc has zero gradient',
  () => [u(0.1, 0.9, 4)],
  (a) => a.div(0.3, 'trunc').add(a),
);
add(
  'remainder',
  'tensor',
  () => [u(0.1, 2.9, 5), u(0.6, 0.9, 5)],
  (a, b) => a.remainder(b),
);
add(
  'remainder',
  'scalar',
  () => [u(0.05, 0.95, 5)],
  (a) => a.mul(3).remainder(1),
);
add(
  'pow',
  'tensor exponent',
  () => [u(0.5, 2, 4), x(4)],
  (a, b) => a.pow(b),
);
add(
  'pow',
  'integer exponent',
  () => [x(4)],
  (a) => a.pow(3),
);
add(
  'pow',
  'fractional exponent',
  () => [u(0.5, 2, 4)],
  (a) => a.pow(2.5),
);
add(
  'maximum',
  'maximum',
  () => [x(6), x(6)],
  (a, b) => a.maximum(b),
);
add(
  'minimum',
  'minimum',
  () => [x(6), x(6)],
  (a, b) => a.minimum(b),
);
add(
  'atan2',
  'atan2',
  () => [x(5), x(5)],
  (a, b) => a.atan2(b),
);
add(
  'neg',
  'neg',
  () => [x(4)],
  (a) => a.neg().mul(a),
);
add(
  'reciprocal',
  'reciprocal',
  () => [u(0.5, 2, 4)],
  (a) => a.reciprocal(),
);
add(
  'exp',
  'exp',
  () => [x(4)],
  (a) => a.exp(),
);
add(
  'expm1',
  'expm1',
  () => [x(4)],
  (a) => a.expm1(),
);
add(
  'log',
  'log',
  () => [u(0.2, 3, 4)],
  (a) => a.log(),
);
add(
  'log1p',
  'log1p',
  () => [u(-0.5, 3, 4)],
  (a) => a.log1p(),
);
add(
  'log2',
  'log2',
  () => [u(0.2, 3, 4)],
  (a) => a.log2(),
);
add(
  'sqrt',
  'sqrt',
  () => [u(0.2, 3, 4)],
  (a) => a.sqrt(),
);
add(
  'rsqrt',
  'rsqrt',
  () => [u(0.2, 3, 4)],
  (a) => a.rsqrt(),
);
add(
  'square',
  'square',
  () => [x(4)],
  (a) => a.square(),
);
add(
  'abs',
  'abs',
  () => [x(6)],
  (a) => a.abs(),
);
add(
  'sign',
  'zero gradient',
  () => [x(5)],
  (a) => a.sign().add(a),
);
add(
  'floor',
  'zero gradient',
  () => [x(5)],
  (a) => a.mul(3).floor().add(a),
);
add(
  'ceil',
  'zero gradient',
  () => [x(5)],
  (a) => a.mul(3).ceil().add(a),
);
add(
  'round',
  'zero gradient',
  () => [x(5)],
  (a) => a.mul(3).round().add(a),
);
add(
  'trunc',
  'zero gradient',
  () => [x(5)],
  (a) => a.mul(3).trunc().add(a),
);
add(
  'sin',
  'sin',
  () => [x(5)],
  (a) => a.sin(),
);
add(
  'cos',
  'cos',
  () => [x(5)],
  (a) => a.cos(),
);
add(
  'erf',
  'erf',
  () => [x(5)],
  (a) => a.erf(),
);
add(
  'sigmoid',
  'sigmoid',
  () => [x(5)],
  (a) => F.sigmoid(a),
);
add(
  'tanh',
  'tanh',
  () => [x(5)],
  (a) => F.tanh(a),
);
add(
  'relu',
  'relu',
  () => [x(8)],
  (a) => F.relu(a),
);
add(
  'clamp',
  'both bounds',
  () => [x(8)],
  (a) => a.clamp(-0.5, 0.4),
);
add(
  'clamp',
  'min only',
  () => [x(8)],
  (a) => a.clamp(0.1, null),
);
add(
  'clamp',
  'max only',
  () => [x(8)],
  (a) => a.clamp(null, -0.2),
);
add(
  'lerp',
  'scalar weight',
  () => [x(4), x(4)],
  (a, b) => a.lerp(b, 0.3),
);
add(
  'lerp',
  'tensor weight',
  () => [x(4), x(4), u(0, 1, 4)],
  (a, b, w) => a.lerp(b, w),
);
add(
  'matmul',
  'matrix',
  () => [x(3, 4), x(4, 2)],
  (a, b) => a.matmul(b),
);
add(
  'matmul',
  'batched with broadcasting',
  () => [x(2, 3, 4), x(4, 2)],
  (a, b) => a.matmul(b),
);
add(
  'matmul',
  'vector-matrix',
  () => [x(4), x(4, 3)],
  (a, b) => a.matmul(b),
);
add(
  'mm',
  'mm',
  () => [x(3, 4), x(4, 2)],
  (a, b) => a.mm(b),
);
add(
  'bmm',
  'bmm',
  () => [x(2, 3, 4), x(2, 4, 2)],
  (a, b) => a.bmm(b),
);
add(
  'dot',
  'dot',
  () => [x(5), x(5)],
  (a, b) => a.dot(b),
);
add(
  'outer',
  'outer',
  () => [x(3), x(4)],
  (a, b) => a.outer(b),
);
add(
  'addmm',
  'beta and alpha',
  () => [x(3, 2), x(3, 4), x(4, 2)],
  (s, a, b) => s.addmm(a, b, 0.5, 2),
);
add(
  'addmm',
  'broadcast bias',
  () => [x(2), x(3, 4), x(4, 2)],
  (s, a, b) => s.addmm(a, b),
);

// in-place arithmetic, on copies so that autograd records it
add(
  'add_',
  'tensor with alpha',
  () => [x(3), x(3)],
  (a, b) => a.mul(1).add_(b, -2),
);
add(
  'sub_',
  'tensor with alpha',
  () => [x(3), x(3)],
  (a, b) => a.mul(1).sub_(b, 3),
);
add(
  'mul_',
  'tensor',
  () => [x(3), x(3)],
  (a, b) => a.mul(1).mul_(b),
);
add(
  'div_',
  'tensor',
  () => [x(3), u(0.5, 2, 3)],
  (a, b) => a.mul(1).div_(b),
);
add(
  'addcmul_',
  'addcmul_',
  () => [x(3), x(3), x(3)],
  (a, b, d) => a.mul(1).addcmul_(b, d, 0.5),
);
add(
  'addcdiv_',
  'addcdiv_',
  () => [x(3), x(3), u(0.5, 2, 3)],
  (a, b, d) => a.mul(1).addcdiv_(b, d, -1.5),
);
add(
  'lerp_',
  'tensor weight',
  () => [x(3), x(3), u(0, 1, 3)],
  (a, b, w) => a.mul(1).lerp_(b, w),
);
add(
  'clamp_',
  'clamp_',
  () => [x(8)],
  (a) => a.mul(1).clamp_(-0.3, 0.6),
);
add(
  'relu_',
  'after a batch norm, whose output autograd does not keep',
  () => [x(4, 3, 2, 2), x(3)],
  (a, w) => nn.functional.batchNorm(a, null, null, { weight: w, training: true }).relu_(),
);
add(
  'copy_',
  'gradient flows to the source',
  () => [x(2, 3), x(3)],
  (a, b) => a.mul(1).copy_(b).mul(a),
);

// reductions
add(
  'sum',
  'all',
  () => [x(3, 4)],
  (a) => a.sum(),
);
add(
  'sum',
  'dims keepdim',
  () => [x(2, 3, 4)],
  (a) => a.sum([0, 2], true).mul(a),
);
add(
  'mean',
  'all',
  () => [x(3, 4)],
  (a) => a.mean().mul(a),
);
add(
  'mean',
  'dim',
  () => [x(3, 4)],
  (a) => a.mean(1),
);
add(
  'var',
  'all',
  () => [x(3, 4)],
  (a) => a.var(),
);
add(
  'var',
  'dim, population, keepdim',
  () => [x(3, 4)],
  (a) => a.var([1], 0, true),
);
add(
  'std',
  'all',
  () => [x(3, 4)],
  (a) => a.std(),
);
add(
  'std',
  'dim',
  () => [x(3, 4)],
  (a) => a.std([0]),
);
add(
  'prod',
  'all',
  () => [u(0.5, 1.5, 6)],
  (a) => a.prod(),
);
add(
  'prod',
  'dim',
  () => [x(3, 4)],
  (a) => a.prod(1, true),
);
add(
  'max',
  'all',
  () => [x(3, 4)],
  (a) => a.max(),
);
add(
  'min',
  'all',
  () => [x(3, 4)],
  (a) => a.min(),
);
add(
  'max_dim',
  'values',
  () => [x(3, 4)],
  (a) => a.maxDim(1),
);
add(
  'min_dim',
  'values keepdim',
  () => [x(3, 4)],
  (a) => a.minDim(0, true),
);
add(
  'amax',
  'amax',
  () => [x(2, 3, 4)],
  (a) => a.amax([0, 2]),
);
add(
  'amin',
  'amin',
  () => [x(2, 3, 4)],
  (a) => a.amin(1, true),
);
add(
  'logsumexp',
  'logsumexp',
  () => [x(3, 4)],
  (a) => a.logsumexp(1),
);
add(
  'norm',
  '2-norm',
  () => [x(3, 4)],
  (a) => a.norm(),
);
add(
  'norm',
  '1-norm over a dim',
  () => [x(3, 4)],
  (a) => a.norm(1, [1]),
);
add(
  'norm',
  '3-norm keepdim',
  () => [x(3, 4)],
  (a) => a.norm(3, [0], true),
);
add(
  'norm',
  'F.normalize',
  () => [x(3, 4)],
  (a) => F.normalize(a, { dim: 1 }),
);
add(
  'topk',
  'values',
  () => [x(3, 5)],
  (a) => a.topk(2, 1),
);
add(
  'topk',
  'smallest',
  () => [x(5, 3)],
  (a) => a.topk(3, 0, false),
);
add(
  'sort',
  'values',
  () => [x(3, 5)],
  (a) => a.sort(1),
);
add(
  'sort',
  'descending',
  () => [x(5, 2)],
  (a) => a.sort(0, true),
);
add(
  'cumsum',
  'cumsum',
  () => [x(3, 4)],
  (a) => a.cumsum(1),
);

// joins and selection
add(
  'cat',
  'cat',
  () => [x(2, 3), x(1, 3)],
  (a, b) => torch.cat([a, b, a], 0),
);
add(
  'stack',
  'stack',
  () => [x(2, 3), x(2, 3)],
  (a, b) => torch.stack([a, b], 1),
);
add(
  'where',
  'tensor other',
  () => [mask([true, false, true, false]), x(4), x(4)],
  (m, a, b) => torch.where(m, a, b),
);
add(
  'where',
  'scalar other',
  () => [mask([true, false, true, false]), x(4)],
  (m, a) => torch.where(m, a, 0.5),
);
add(
  'einsum',
  'batched bilinear',
  () => [x(2, 3), x(3, 4), x(2, 4)],
  (a, w, b) => torch.einsum('bi,ij,bj->b', [a, w, b]),
);

// linear algebra: eigh differentiates as if its input were symmetric, so the cases symmetrize it;
// eigenvectors are defined up to sign, so they enter squared.
const eighOfSymmetrized = (a: Tensor, uplo?: 'L' | 'U') => {
  const { eigenvalues, eigenvectors } = torch.linalg.eigh(a.add(a.transpose(-2, -1)).mul(0.5), uplo);
  return [eigenvalues, eigenvectors.square()];
};
add(
  'linalg_eigh',
  'eigenvalues and squared eigenvectors',
  () => [x(4, 4)],
  (a) => eighOfSymmetrized(a),
);
add(
  'linalg_eigh',
  'upper triangle, batched',
  () => [x(2, 3, 3)],
  (a) => eighOfSymmetrized(a, 'U'),
);

// nn: convolutions and linear layers
add(
  'conv2d',
  'bias',
  () => [x(2, 2, 5, 5), x(3, 2, 3, 3), x(3)],
  (a, w, b) => F.conv2d(a, w, b),
);
add(
  'conv2d',
  'stride 2, padding 1',
  () => [x(1, 2, 6, 5), x(3, 2, 3, 3), x(3)],
  (a, w, b) => F.conv2d(a, w, b, { stride: 2, padding: 1 }),
);
add(
  'conv2d',
  'dilation 2, asymmetric stride and padding',
  () => [x(1, 2, 7, 7), x(2, 2, 3, 2)],
  (a, w) => F.conv2d(a, w, null, { dilation: 2, stride: [1, 2], padding: [2, 1] }),
);
add(
  'conv2d',
  'groups 2',
  () => [x(1, 4, 5, 5), x(6, 2, 3, 3), x(6)],
  (a, w, b) => F.conv2d(a, w, b, { groups: 2, padding: 1 }),
);
add(
  'conv_transpose2d',
  'stride, padding, output padding',
  () => [x(1, 2, 3, 3), x(2, 3, 3, 3), x(3)],
  (a, w, b) => F.convTranspose2d(a, w, b, { stride: 2, padding: 1, outputPadding: 1 }),
);
add(
  'conv_transpose2d',
  'groups and dilation',
  () => [x(1, 4, 3, 3), x(4, 1, 2, 2)],
  (a, w) => F.convTranspose2d(a, w, null, { groups: 2, dilation: 2 }),
);
add(
  'linear',
  'bias',
  () => [x(4, 3), x(2, 3), x(2)],
  (a, w, b) => F.linear(a, w, b),
);
add(
  'linear',
  '3-d input without bias',
  () => [x(2, 2, 3), x(4, 3)],
  (a, w) => F.linear(a, w),
);

// nn: normalization
add(
  'batch_norm',
  'training',
  () => [x(4, 3, 2, 2), u(0.5, 1.5, 3), x(3)],
  (a, w, b) => F.batchNorm(a, null, null, { weight: w, bias: b, training: true, eps: 1e-3 }),
);
add(
  'batch_norm',
  'training, 2-d, running stats updated',
  () => [x(5, 3), u(0.5, 1.5, 3), x(3)],
  (a, w, b) => F.batchNorm(a, torch.zeros([3], 'float64'), torch.ones([3], 'float64'), { weight: w, bias: b, training: true }),
);
add(
  'batch_norm',
  'evaluation',
  () => [x(4, 3, 2, 2), u(0.5, 1.5, 3), x(3)],
  (a, w, b) =>
    F.batchNorm(a, torch.tensor([0.1, -0.2, 0.3], { dtype: 'float64' }), torch.tensor([0.5, 1.5, 2], { dtype: 'float64' }), {
      weight: w,
      bias: b,
    }),
);
add(
  'group_norm',
  'group_norm',
  () => [x(2, 4, 3, 3), u(0.5, 1.5, 4), x(4)],
  (a, w, b) => F.groupNorm(a, 2, { weight: w, bias: b }),
);
add(
  'layer_norm',
  'layer_norm',
  () => [x(2, 3, 4), u(0.5, 1.5, 3, 4), x(3, 4)],
  (a, w, b) => F.layerNorm(a, [3, 4], { weight: w, bias: b }),
);

// nn: pooling and resampling
add(
  'max_pool2d',
  'kernel 2',
  () => [x(1, 2, 4, 6)],
  (a) => F.maxPool2d(a, 2),
);
add(
  'max_pool2d',
  'kernel 3, stride 2, padding 1, ceil mode',
  () => [x(1, 2, 6, 6)],
  (a) => F.maxPool2d(a, 3, { stride: 2, padding: 1, ceilMode: true }),
);
add(
  'max_pool2d',
  'dilation 2',
  () => [x(1, 1, 6, 6)],
  (a) => F.maxPool2d(a, 2, { stride: 1, dilation: 2 }),
);
add(
  'avg_pool2d',
  'kernel 2',
  () => [x(1, 2, 4, 6)],
  (a) => F.avgPool2d(a, 2),
);
add(
  'avg_pool2d',
  'padding without counting it, ceil mode',
  () => [x(1, 2, 5, 5)],
  (a) => F.avgPool2d(a, 3, { stride: 2, padding: 1, countIncludePad: false, ceilMode: true }),
);
add(
  'adaptive_avg_pool2d',
  'uneven bins',
  () => [x(1, 2, 5, 7)],
  (a) => F.adaptiveAvgPool2d(a, [3, 2]),
);
add(
  'adaptive_max_pool2d',
  'values',
  () => [x(1, 2, 5, 7)],
  (a) => torch.adaptiveMaxPool2d(a, [2, 3]),
);
add(
  'upsample_nearest2d',
  'size',
  () => [x(1, 2, 3, 4)],
  (a) => F.interpolate(a, { size: [5, 7], mode: 'nearest' }),
);
add(
  'upsample_nearest2d',
  'scale factor',
  () => [x(1, 2, 3, 4)],
  (a) => F.interpolate(a, { scaleFactor: 1.5, mode: 'nearest' }),
);
add(
  'upsample_bilinear2d',
  'size',
  () => [x(1, 2, 3, 4)],
  (a) => F.interpolate(a, { size: [5, 7], mode: 'bilinear' }),
);
add(
  'upsample_bilinear2d',
  'align corners',
  () => [x(1, 2, 3, 4)],
  (a) => F.interpolate(a, { size: [5, 7], mode: 'bilinear', alignCorners: true }),
);
add(
  'upsample_bilinear2d',
  'scale factor',
  () => [x(1, 1, 4, 3)],
  (a) => F.interpolate(a, { scaleFactor: 1.5, mode: 'bilinear' }),
);
add(
  'upsample_bicubic2d',
  'size',
  () => [x(1, 2, 3, 4)],
  (a) => F.interpolate(a, { size: [5, 7], mode: 'bicubic' }),
);
add(
  'upsample_bicubic2d',
  'align corners, downsampling',
  () => [x(1, 1, 6, 5)],
  (a) => F.interpolate(a, { size: [4, 3], mode: 'bicubic', alignCorners: true }),
);
add(
  'pixel_shuffle',
  'pixel_shuffle',
  () => [x(1, 8, 2, 3)],
  (a) => F.pixelShuffle(a, 2).cumsum(3),
);
add(
  'pixel_unshuffle',
  'pixel_unshuffle',
  () => [x(1, 2, 4, 6)],
  (a) => torch.pixelUnshuffle(a, 2).cumsum(1),
);
add(
  'dropout',
  'training, fixed seed',
  () => [x(4, 5)],
  seeded((a) => F.dropout(a, 0.4, true)),
);
add(
  'dropout',
  'evaluation is the identity',
  () => [x(4, 5)],
  (a) => F.dropout(a, 0.4, false).mul(a),
);
add(
  'feature_dropout',
  'training, fixed seed',
  () => [x(2, 4, 2, 2)],
  seeded((a) => F.dropout2d(a, 0.5, true)),
);

// nn: activations
add(
  'leaky_relu',
  'leaky_relu',
  () => [x(8)],
  (a) => F.leakyRelu(a, 0.2),
);
add(
  'gelu',
  'exact',
  () => [x(8)],
  (a) => F.gelu(a),
);
add(
  'gelu',
  'tanh approximation',
  () => [x(8)],
  (a) => F.gelu(a, 'tanh'),
);
add(
  'elu',
  'elu',
  () => [x(8)],
  (a) => F.elu(a, 1.3),
);
add(
  'silu',
  'silu',
  () => [x(8)],
  (a) => F.silu(a),
);
add(
  'softplus',
  'beta 2 with both regimes',
  () => [x(8)],
  (a) => torch.softplus(a, 2, 1),
);
add(
  'hardtanh',
  'hardtanh',
  () => [x(8)],
  (a) => torch.hardtanh(a, -0.5, 0.7),
);
add(
  'softmax',
  'last dim',
  () => [x(3, 4)],
  (a) => F.softmax(a, -1),
);
add(
  'softmax',
  'dim 0',
  () => [x(3, 4)],
  (a) => F.softmax(a, 0),
);
add(
  'log_softmax',
  'log_softmax',
  () => [x(3, 4)],
  (a) => F.logSoftmax(a, 1),
);

// nn: padding
add(
  'constant_pad_nd',
  'value and cropping',
  () => [x(1, 2, 3, 4)],
  (a) => F.pad(a, [1, 2, -1, 1], { value: 0.5 }).cumsum(3),
);
add(
  'reflection_pad2d',
  'reflection_pad2d',
  () => [x(1, 2, 3, 4)],
  (a) => F.pad(a, [1, 2, 2, 1], { mode: 'reflect' }).cumsum(3),
);
add(
  'replication_pad2d',
  'replication_pad2d',
  () => [x(1, 2, 3, 4)],
  (a) => F.pad(a, [2, 1, 1, 2], { mode: 'replicate' }).cumsum(2),
);

// nn: losses
const target5 = () => long([1, 0, 4, 2, 4, 3]);
add(
  'cross_entropy_loss',
  'mean',
  () => [x(6, 5), target5()],
  (a, t) => F.crossEntropy(a, t),
);
add(
  'cross_entropy_loss',
  'class weights',
  () => [x(6, 5), target5(), c(5).abs()],
  (a, t, w) => F.crossEntropy(a, t, { weight: w }),
);
add(
  'cross_entropy_loss',
  'label smoothing',
  () => [x(6, 5), target5()],
  (a, t) => F.crossEntropy(a, t, { labelSmoothing: 0.2 }),
);
add(
  'cross_entropy_loss',
  'ignore index',
  () => [x(6, 5), long([1, -100, 4, 2, -100, 3])],
  (a, t) => F.crossEntropy(a, t),
);
add(
  'cross_entropy_loss',
  'weights, smoothing and ignore index together',
  () => [x(6, 5), long([1, 2, 4, 7, 4, 3]), c(5).abs()],
  (a, t, w) => F.crossEntropy(a, t, { weight: w, labelSmoothing: 0.1, ignoreIndex: 7 }),
);
add(
  'cross_entropy_loss',
  'sum and none reductions',
  () => [x(6, 5), target5()],
  (a, t) => [F.crossEntropy(a, t, { reduction: 'sum' }), F.crossEntropy(a, t, { reduction: 'none', labelSmoothing: 0.3 })],
);
add(
  'cross_entropy_loss',
  'probability targets',
  () => [x(4, 3), u(0, 1, 4, 3)],
  (a, p) => F.crossEntropy(a, p),
);
add(
  'cross_entropy_loss',
  'spatial',
  () => [x(2, 3, 2, 2), long([0, 2, 1, 1, 2, 0, 0, 1], [2, 2, 2])],
  (a, t) => F.crossEntropy(a, t, { labelSmoothing: 0.1 }),
);
add(
  'nll_loss',
  'weights and ignore index',
  () => [x(6, 5), long([1, 0, -100, 2, 4, 3]), c(5).abs()],
  (a, t, w) => F.nllLoss(F.logSoftmax(a, 1), t, { weight: w }),
);
add(
  'nll_loss',
  'none',
  () => [x(6, 5), target5()],
  (a, t) => F.nllLoss(a, t, { reduction: 'none' }),
);
add(
  'mse_loss',
  'mean, sum and none',
  () => [x(3, 4), x(3, 4)],
  (a, b) => [F.mseLoss(a, b), F.mseLoss(a, b, { reduction: 'sum' }), F.mseLoss(a, b, { reduction: 'none' })],
);
add(
  'l1_loss',
  'mean and none',
  () => [x(3, 4), x(3, 4)],
  (a, b) => [F.l1Loss(a, b), F.l1Loss(a, b, { reduction: 'none' })],
);
add(
  'smooth_l1_loss',
  'beta 0.5',
  () => [x(3, 4), x(3, 4)],
  (a, b) => F.smoothL1Loss(a, b, { beta: 0.5 }),
);
add(
  'huber_loss',
  'delta 0.7',
  () => [x(3, 4), x(3, 4)],
  (a, b) => torch.huberLoss(a, b, 'sum', 0.7),
);
add(
  'binary_cross_entropy_with_logits',
  'weight and posWeight',
  () => [x(3, 4), u(0, 1, 3, 4), c(4).abs(), c(4).abs()],
  (a, t, w, p) => F.bceWithLogits(a, t, { weight: w, posWeight: p }),
);
add(
  'binary_cross_entropy',
  'weight',
  () => [u(0.1, 0.9, 3, 4), u(0, 1, 3, 4), u(0.5, 2, 3, 4).detach()],
  (a, t, w) => F.binaryCrossEntropy(a, t, { weight: w }),
);
add(
  'kl_div',
  'probability target',
  () => [x(3, 4), u(0.1, 1, 3, 4)],
  (a, t) => torch.klDiv(F.logSoftmax(a, 1), t, 'sum'),
);
add(
  'kl_div',
  'log target',
  () => [x(3, 4), x(3, 4)],
  (a, t) => torch.klDiv(F.logSoftmax(a, 1), F.logSoftmax(t, 1), 'mean', true),
);

// nn: distances and sampling
add(
  'cosine_similarity',
  'dim 1',
  () => [x(3, 4), x(3, 4)],
  (a, b) => F.cosineSimilarity(a, b),
);
add(
  'cosine_similarity',
  'broadcast, last dim',
  () => [x(2, 3, 4), x(3, 4)],
  (a, b) => F.cosineSimilarity(a, b, { dim: -1 }),
);
add(
  'pairwise_distance',
  'p=2',
  () => [x(3, 4), x(3, 4)],
  (a, b) => torch.pairwiseDistance(a, b),
);
add(
  'pairwise_distance',
  'p=1 keepdim',
  () => [x(3, 4), x(3, 4)],
  (a, b) => torch.pairwiseDistance(a, b, 1, 1e-6, true),
);
add(
  'cdist',
  'p=2',
  () => [x(3, 4), x(5, 4)],
  (a, b) => torch.cdist(a, b),
);
add(
  'cdist',
  'p=1, batched',
  () => [x(2, 3, 4), x(2, 2, 4)],
  (a, b) => torch.cdist(a, b, 1),
);
add(
  'affine_grid_generator',
  'affine_grid_generator',
  () => [x(2, 2, 3)],
  (t) => F.affineGrid(t, [2, 1, 3, 4]),
);
add(
  'affine_grid_generator',
  'align corners',
  () => [x(1, 2, 3)],
  (t) => F.affineGrid(t, [1, 1, 4, 3], true),
);
add(
  'grid_sampler',
  'bilinear, zeros',
  () => [x(1, 2, 4, 5), u(-0.9, 0.9, 1, 3, 2, 2)],
  (a, g) => F.gridSample(a, g),
);
add(
  'grid_sampler',
  'bilinear, border, align corners',
  () => [x(1, 2, 4, 5), u(-1.2, 1.2, 1, 3, 2, 2)],
  (a, g) => F.gridSample(a, g, { paddingMode: 'border', alignCorners: true }),
);
add(
  'grid_sampler',
  'bicubic, reflection',
  () => [x(1, 1, 4, 4), u(-1.1, 1.1, 1, 2, 2, 2)],
  (a, g) => F.gridSample(a, g, { mode: 'bicubic', paddingMode: 'reflection' }),
);
add(
  'grid_sampler',
  'nearest',
  () => [x(1, 2, 4, 5), u(-0.9, 0.9, 1, 3, 2, 2).detach()],
  (a, g) => F.gridSample(a, g, { mode: 'nearest' }),
);
add(
  'grid_sampler',
  'from an affine grid',
  () => [x(1, 2, 4, 4), x(1, 2, 3)],
  (a, t) => F.gridSample(a, F.affineGrid(t.mul(0.3), [1, 2, 3, 3])),
);

/** Ops in the table that autograd does not differentiate (or that this file checks another way). */
const nonDifferentiable: Record<string, string> = {
  // Multi-tensor optimizer updates: run under noGrad on parameters, checked against PyTorch's optimizers in optim.test.ts.
  foreach_add_: 'optimizer update',
  foreach_add: 'optimizer update',
  foreach_add_scalar_: 'optimizer update',
  foreach_mul_: 'optimizer update',
  foreach_div_: 'optimizer update',
  foreach_addcmul_: 'optimizer update',
  foreach_addcdiv_: 'optimizer update',
  foreach_sqrt: 'optimizer update',
  _sizes: 'metadata',
  strides: 'metadata',
  _scalar_type: 'metadata',
  _device_name: 'metadata',
  numel: 'metadata',
  dim: 'metadata',
  is_contiguous: 'metadata',
  is_channels_last: 'metadata',
  is_alias_of: 'metadata',
  item: 'returns a JS number',
  _requires_grad: 'autograd state',
  requires_grad_: 'autograd state',
  is_leaf: 'autograd state',
  _grad: 'autograd state',
  _set_grad: 'autograd state',
  retain_grad: 'autograd state',
  set_data: 'autograd state',
  detach: 'cuts the graph (tested below)',
  one_hot: 'integer result',
  nonzero: 'integer result',
  argsort: 'integer result',
  argmax: 'integer result',
  argmin: 'integer result',
  bincount: 'integer input',
  all: 'boolean result',
  any: 'boolean result',
  fill_: 'overwrites: no gradient to the old values',
  zero_: 'overwrites: no gradient to the old values',
  uniform_: 'random fill',
  normal_: 'random fill',
  bernoulli: 'random sample',
  eq: 'comparison',
  ne: 'comparison',
  lt: 'comparison',
  le: 'comparison',
  gt: 'comparison',
  ge: 'comparison',
  equal: 'comparison',
  allclose: 'comparison',
  isnan: 'comparison',
  isfinite: 'comparison',
  logical_not: 'logical',
  logical_and: 'logical',
  logical_or: 'logical',
  empty: 'creation',
  zeros: 'creation',
  ones: 'creation',
  full: 'creation',
  arange: 'creation',
  linspace: 'creation',
  eye: 'creation',
  rand: 'creation',
  randn: 'creation',
  randint: 'creation',
  randperm: 'creation',
  zeros_like: 'creation',
  ones_like: 'creation',
  full_like: 'creation',
};

describe('gradcheck utility', () => {
  test('accepts correct gradients and reports wrong ones', () =>
    torch.tidy(() => {
      gen.manualSeed(1);
      const a = x(3, 4);
      const good = testing.gradcheck((t) => t.tanh().mul(t), [a]);
      assert.equal(good.ok, true);
      assert.equal(good.checked, 12);
      assert.ok(good.maxError < 1e-8, `max error ${good.maxError}`);
      // Detaching one factor hides half of the derivative from autograd: every element disagrees.
      const bad = testing.gradcheck((t) => t.mul(t.detach()), [a]);
      assert.equal(bad.ok, false);
      assert.equal(bad.mismatches.length, 12);
      assert.throws(
        () => testing.assertGradcheck((t) => t.mul(t.detach()), [a], {}, 'square'),
        /square: 12 of 12 gradient elements disagree/,
      );
    }));

  test('leaves inputs unchanged, skips inputs without grad, samples large inputs', () =>
    torch.tidy(() => {
      gen.manualSeed(2);
      const a = x(50);
      const before = a.detach().clone();
      const constant = c(50);
      const r = testing.gradcheck((t, k) => t.sin().mul(k), [a, constant], { maxElements: 10 });
      assert.equal(r.ok, true);
      assert.equal(r.checked, 10);
      assert.ok(a.equal(before));
    }));

  test('rejects float32 inputs and calls without any input that requires grad', () =>
    torch.tidy(() => {
      assert.throws(() => testing.gradcheck((t) => t, [torch.ones([2]).requiresGrad_()]), /input 0 is float32/);
      assert.throws(() => testing.gradcheck((t) => t, [torch.ones([2], 'float64')]), /no input requires grad/);
      assert.throws(
        () => testing.gradgradcheck((t) => t.mul(t), [torch.ones([2], 'float64')]),
        /^Error: gradgradcheck: no input requires grad$/,
      );
      assert.throws(
        () => testing.gradgradcheck((t) => t.mul(t), [torch.ones([2]).requiresGrad_()]),
        /^TypeError: gradgradcheck: input 0 is float32/,
      );
    }));
});

describe('gradients of every differentiable op against finite differences', () => {
  cases.forEach((k, index) => {
    test(`${k.op}: ${k.name}`, () =>
      torch.tidy(() => {
        gen.manualSeed(1000 + index);
        const inputs = k.inputs();
        testing.assertGradcheck(k.fn, inputs, { seed: index, ...k.options }, `${k.op} (${k.name})`);
      }));
  });

  test('every differentiable op in the table has a case, and the exemption list is current', () => {
    assert.ok(tableOps.length > 150, `read ${tableOps.length} ops from native/ops.mjs`);
    const covered = new Set(cases.map((k) => k.op));
    const missing = tableOps.filter((op) => !covered.has(op) && !(op in nonDifferentiable));
    assert.deepEqual(missing, [], `ops without a gradcheck case (add one, or list them as non-differentiable): ${missing.join(', ')}`);
    const stale = [...covered, ...Object.keys(nonDifferentiable)].filter((op) => !tableOps.includes(op));
    assert.deepEqual(stale, [], `names that are not in the op table: ${stale.join(', ')}`);
    const both = Object.keys(nonDifferentiable).filter((op) => covered.has(op));
    assert.deepEqual(both, [], `listed as non-differentiable but checked: ${both.join(', ')}`);
  });
});

describe('second derivatives', () => {
  const second = [
    { name: 'tanh * x', fn: (a: Tensor) => a.tanh().mul(a), inputs: () => [x(5)] },
    { name: 'softmax', fn: (a: Tensor) => F.softmax(a, 1), inputs: () => [x(2, 3)] },
    { name: 'logSoftmax', fn: (a: Tensor) => F.logSoftmax(a, 1), inputs: () => [x(2, 3)] },
    { name: 'conv2d', fn: (a: Tensor, w: Tensor) => F.conv2d(a, w, null, { padding: 1 }), inputs: () => [x(1, 1, 3, 3), x(2, 1, 2, 2)] },
    { name: 'gelu', fn: (a: Tensor) => F.gelu(a), inputs: () => [x(5)] },
    { name: 'norm', fn: (a: Tensor) => a.norm(2, [1]), inputs: () => [x(2, 3)] },
  ];
  second.forEach((k, index) => {
    test(`gradgradcheck: ${k.name}`, () =>
      torch.tidy(() => {
        gen.manualSeed(5000 + index);
        const r = testing.gradgradcheck(k.fn as GradcheckFn, k.inputs());
        assert.ok(r.ok, `${k.name}: ${JSON.stringify(r.mismatches.slice(0, 3))}`);
      }));
  });

  test('createGraph gives the second derivative of x^3 (6x) and a gradient penalty', () =>
    torch.tidy(() => {
      const a = torch.tensor([-1.5, 0.5, 2], { dtype: 'float64', requiresGrad: true });
      const [g] = torch.autograd.grad(a.pow(3).sum(), a, { createGraph: true });
      assert.deepEqual(g!.toArray(), [6.75, 0.75, 12]); // 3x^2
      assert.equal(g!.requiresGrad, true);
      const [h] = torch.autograd.grad(g!.sum(), a);
      assert.deepEqual(h!.toArray(), [-9, 3, 12]); // 6x
      // A gradient penalty sum((3x^2)^2) = 9 sum(x^4) has derivative 36 x^3, through backward().
      const [g2] = torch.autograd.grad(a.pow(3).sum(), a, { createGraph: true });
      g2!.square().sum().backward();
      assert.deepEqual(a.grad!.toArray(), [36 * -3.375, 36 * 0.125, 36 * 8]);
    }));

  test('without createGraph the gradient is a constant', () =>
    torch.tidy(() => {
      const a = torch.tensor([1, 2], { dtype: 'float64', requiresGrad: true });
      const [g] = torch.autograd.grad(a.pow(3).sum(), a);
      assert.equal(g!.requiresGrad, false);
      assert.throws(() => torch.autograd.grad(g!.sum(), a), /autograd.grad: .*does not require grad/);
    }));
});

describe('graph bookkeeping', () => {
  test('backward with retainGraph twice accumulates gradients', () =>
    torch.tidy(() => {
      const a = torch.tensor([1, -2, 3], { dtype: 'float64', requiresGrad: true });
      const y = a.square().sum();
      y.backward({ retainGraph: true });
      assert.deepEqual(a.grad!.toArray(), [2, -4, 6]);
      y.backward();
      assert.deepEqual(a.grad!.toArray(), [4, -8, 12]);
      // The graph is freed now: a third pass is an error that names backward, and the process carries on.
      assert.throws(() => y.backward(), /backward: .*second time/);
      a.grad = undefined;
      a.mul(5).sum().backward();
      assert.deepEqual(a.grad!.toArray(), [5, 5, 5]);
    }));

  test('autograd.grad accumulates nothing into .grad and can keep the graph', () =>
    torch.tidy(() => {
      const a = torch.tensor([1, 2], { dtype: 'float64', requiresGrad: true });
      const y = a.exp().sum();
      const [g1] = torch.autograd.grad(y, a, { retainGraph: true });
      const [g2] = torch.autograd.grad(y, a);
      assert.deepEqual(g1!.toArray(), g2!.toArray());
      assert.equal(a.grad, undefined);
    }));

  test('allowUnused returns undefined for inputs the output does not use', () =>
    torch.tidy(() => {
      const a = torch.tensor([1, 2], { dtype: 'float64', requiresGrad: true });
      const b = torch.tensor([3], { dtype: 'float64', requiresGrad: true });
      assert.throws(() => torch.autograd.grad(a.sum(), [a, b], { retainGraph: true }), /autograd.grad: .*not have been used/);
      const [ga, gb] = torch.autograd.grad(a.sum(), [a, b], { allowUnused: true });
      assert.deepEqual(ga!.toArray(), [1, 1]);
      assert.equal(gb, undefined);
    }));

  test('detach cuts the graph and shares storage', () =>
    torch.tidy(() => {
      const a = torch.tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
      const d = a.detach();
      assert.equal(d.requiresGrad, false);
      assert.ok(d.isAliasOf(a));
      a.mul(d).sum().backward(); // d/da (a * const) = const
      assert.deepEqual(a.grad!.toArray(), [1, 2, 3]);
    }));

  test('noGrad records nothing, restores the mode, also after a throw', () =>
    torch.tidy(() => {
      const a = torch.tensor([1, 2], { dtype: 'float32', requiresGrad: true });
      assert.equal(torch.isGradEnabled(), true);
      const y = torch.noGrad(() => {
        assert.equal(torch.isGradEnabled(), false);
        return a.mul(2);
      });
      assert.equal(y.requiresGrad, false);
      assert.equal(torch.isGradEnabled(), true);
      assert.throws(() =>
        torch.noGrad(() => {
          throw new Error('inside');
        }),
      );
      assert.equal(torch.isGradEnabled(), true);
      const z = torch.noGrad(() => torch.enableGrad(() => a.mul(2)));
      assert.equal(z.requiresGrad, true);
      assert.throws(() => y.sum().backward(), /backward: .*does not require grad/);
    }));

  test('gradients of float32 leaves come back as float32 through a float64 computation', () =>
    torch.tidy(() => {
      const a = torch.tensor([1, 2], { dtype: 'float32', requiresGrad: true });
      a.toDtype('float64').mul(3).sum().backward();
      assert.equal(a.grad!.dtype, 'float32');
      assert.deepEqual(a.grad!.toArray(), [3, 3]);
    }));
});
