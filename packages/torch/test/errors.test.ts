// Misuse gives a JS Error that names the op (or the argument), never a crash: every case runs
// many times over, and real work follows.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as torch from '../src/index.js';
import type { Tensor } from '../src/index.js';

const { nn } = torch;
const F = nn.functional;

type Case = [label: string, run: () => unknown, message: RegExp];

// Deliberately ill-typed calls go through `any`, as they would from plain JavaScript.
const anyTorch: any = torch;
const anyF: any = F;

function disposedTensor(): Tensor {
  const d = torch.ones([3]);
  d.dispose();
  return d;
}

const x = () => torch.randn([2, 3]);
const img = () => torch.randn([1, 2, 5, 5]);
const weight = () => torch.randn([3, 2, 3, 3]);

const cases: Record<string, Case[]> = {
  'shape mismatches': [
    ['add', () => x().add(torch.randn([4])), /^add: The size of tensor a \(3\) must match the size of tensor b \(4\)/],
    ['matmul', () => x().matmul(torch.randn([4, 5])), /^matmul: mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)/],
    ['conv2d channels', () => F.conv2d(img(), torch.randn([3, 4, 3, 3])), /^conv2d: .*expected input\[1, 2, 5, 5\] to have 4 channels/],
    ['cat', () => torch.cat([x(), torch.randn([2, 4])]), /^cat: Sizes of tensors must match/],
    ['reshape', () => x().reshape([4, 2]), /^reshape: shape '\[4, 2\]' is invalid for input of size 6/],
    ['view of a transpose', () => x().t().view([6]), /^view: view size is not compatible/],
    ['linear', () => F.linear(x(), torch.randn([4, 5])), /^linear: mat1 and mat2 shapes cannot be multiplied/],
    ['layerNorm', () => F.layerNorm(x(), [4]), /^layer_norm: Given normalized_shape=\[4\]/],
    ['bmm of matrices', () => x().bmm(x()), /^bmm: batch1 must be a 3D tensor/],
    ['expand', () => x().expand([4, 4]), /^expand: The expanded size of the tensor \(4\) must match/],
    ['item of many', () => x().item(), /^item: a Tensor with 6 elements cannot be converted/],
    ['eigh of a non-square matrix', () => torch.linalg.eigh(x()), /^linalg_eigh: linalg\.eigh: A must be batches of square matrices/],
    [
      'backward of a non-scalar',
      () => torch.ones([2]).requiresGrad_().mul(2).backward(),
      /^backward: grad can be implicitly created only for scalar/,
    ],
    [
      'fromTypedArray',
      () => torch.fromTypedArray(new Float32Array(5), [2, 3]),
      /^fromBuffer: argument 'data' holds 20 bytes but the shape and dtype need 24/,
    ],
  ],
  'dtype errors': [
    ['matmul float by long', () => torch.randn([3]).matmul(torch.tensor([1, 2, 3])), /^matmul: .*same dtype.*Float and Long/],
    [
      'indexSelect with a float index',
      () => x().indexSelect(0, torch.tensor([0.5])),
      /^index_select: .*Expected dtype int32 or int64 for index/,
    ],
    [
      'gather with an int32 index',
      () => x().gather(1, torch.tensor([[0]], { dtype: 'int32' })),
      /^gather: .*Expected dtype int64 for index/,
    ],
    [
      'crossEntropy with float class targets',
      () => F.crossEntropy(x(), torch.tensor([0.5, 1.5])),
      /^cross_entropy_loss: expected scalar type Long/,
    ],
    [
      'requiresGrad on an integer tensor',
      () => torch.tensor([1, 2], { requiresGrad: true }),
      /^tensor: only floating tensors can require grad, got int64/,
    ],
    ['in-place on a leaf that requires grad', () => torch.ones([2]).requiresGrad_().add_(1), /^add_: a leaf Variable that requires grad/],
  ],
  'out-of-range indices': [
    ['indexSelect', () => x().indexSelect(0, torch.tensor([5])), /^index_select: index out of range/],
    ['gather', () => x().gather(1, torch.tensor([[7]])), /^gather: index 7 is out of bounds for dimension 1 with size 3/],
    ['select', () => x().select(0, 5), /^select: select\(\): index 5 out of range for tensor of size \[2, 3\] at dimension 0/],
    ['select with a bad dim', () => x().select(4, 0), /^select: Dimension out of range/],
    ['narrow', () => x().narrow(1, 2, 5), /^narrow: start \(2\) \+ length \(5\) exceeds dimension size \(3\)/],
    ['index', () => x().index(torch.tensor([5])), /^index: index 5 is out of bounds for dimension 0 with size 2/],
    ['scatter', () => x().scatter(1, torch.tensor([[9]]), 1), /^scatter: index 9 is out of bounds/],
    ['crossEntropy target', () => F.crossEntropy(x(), torch.tensor([0, 7])), /^cross_entropy_loss: Target 7 is out of bounds/],
    ['size', () => x().size(3), /^size: dim 3 is out of range for a 2-d tensor/],
  ],
  'disposed tensors': [
    ['as self', () => disposedTensor().add(1), /^add: argument 'self' is a Tensor that has been disposed/],
    ['as an argument', () => x().mul(disposedTensor()), /^mul: argument 'other' is a Tensor that has been disposed/],
    ['in a list', () => torch.cat([torch.ones([3]), disposedTensor()]), /^cat: argument 'tensors' holds a disposed Tensor at item 1/],
    ['as a bias', () => F.conv2d(img(), weight(), disposedTensor()), /^conv2d: argument 'bias' is a Tensor that has been disposed/],
    ['reading its shape', () => disposedTensor().shape, /argument 'self' is a Tensor that has been disposed/],
    [
      'saving it',
      () => torch.safetensors.serialize({ w: disposedTensor() }),
      /^toBuffer: argument 'self' is a Tensor that has been disposed/,
    ],
  ],
  'wrong argument types': [
    ['a string for a number', () => x().add('a' as any), /^add: argument 'other' must be a number/],
    ['a fractional dim', () => x().select(1.5, 0), /^select: argument 'dim' must be an integer, got 1\.5/],
    ['NaN as a dim', () => x().select(NaN, 0), /^select: argument 'dim' must be an integer, got nan/],
    ['a boolean for an int', () => x().select(true as any, 0), /^select: argument 'dim' must be an integer/],
    ['an object for a tensor', () => x().matmul({} as any), /^matmul: argument 'other' must be a Tensor/],
    ['null for a tensor', () => x().matmul(null as any), /^matmul: argument 'other' is required \(a Tensor\)/],
    ['a number for an optional tensor', () => F.conv2d(img(), weight(), 5 as any), /^conv2d: argument 'bias' must be a Tensor/],
    ['a Generator for a tensor', () => x().matmul(new torch.Generator(1) as any), /^matmul: argument 'other' must be a Tensor/],
    ['a Generator as an operand', () => x().add(new torch.Generator(1) as any), /^add: argument 'other' must be a number/],
    ['a tensor for a generator', () => torch.randn([2], x() as any), /^randn: argument 'generator' must be a Generator/],
    ['a non-tensor in a list', () => torch.cat([x(), 3 as any]), /^cat: argument 'tensors' must be an array of Tensors \(item 1 is not\)/],
    ['a tensor for a list', () => torch.cat(x() as any), /^cat: argument 'tensors' must be an array of Tensors/],
    ['a string for a shape', () => torch.zeros('abc' as any), /^zeros: argument 'size' must be an array of integers/],
    ['a missing required argument', () => anyTorch.narrow(x(), 0, 1), /^narrow: argument 'length' must be an integer/],
    ['a number for a string', () => anyF.gelu(x(), 3), /^gelu: 'approximate' must be 'none' or 'tanh', got '3'/],
    ['a bad device', () => torch.zeros([2], 'float32', 'tpu'), /^device: expected 'cpu', 'cuda' or 'cuda:N', got 'tpu'/],
    ['neither dtype nor device', () => x().to('float128' as any), /^to: expected a dtype or a device/],
    ['a negative seed', () => new torch.Generator(-1), /^Generator: seed must be a non-negative integer, got -1/],
    ['zero threads', () => torch.setNumThreads(0), /^setNumThreads: argument 'n' must be at least 1/],
    ['negative sizes', () => torch.zeros([-1]), /^zeros: Trying to create tensor with negative dimension -1/],
  ],
  'negative or zero strides, kernels and padding': [
    ['conv2d stride (functional)', () => F.conv2d(img(), weight(), null, { stride: -1 }), /^conv2d: 'stride' must be a positive integer/],
    [
      'conv2d padding (functional)',
      () => F.conv2d(img(), weight(), null, { padding: -1 }),
      /^conv2d: 'padding' must be a non-negative integer/,
    ],
    [
      'conv2d dilation (functional)',
      () => F.conv2d(img(), weight(), null, { dilation: 0 }),
      /^conv2d: 'dilation' must be a positive integer/,
    ],
    ['conv2d stride (op)', () => torch.conv2d(img(), weight(), null, -1), /^conv2d: non-positive stride is not supported/],
    ['conv2d padding (op)', () => torch.conv2d(img(), weight(), null, 1, -1), /^conv2d: negative padding is not supported/],
    ['Conv2d kernel', () => new nn.Conv2d(2, 3, -1), /^Conv2d: 'kernelSize' must be a positive integer, got -1/],
    ['Conv2d groups', () => new nn.Conv2d(3, 4, 3, { groups: 2 }), /^Conv2d: 'groups' \(2\) must divide inChannels and outChannels/],
    ['maxPool2d kernel (functional)', () => F.maxPool2d(img(), -2), /^maxPool2d: 'kernelSize' must be a positive integer/],
    ['maxPool2d kernel (op)', () => torch.maxPool2d(img(), 0, 1), /^max_pool2d: kernel size should be greater than zero/],
    ['maxPool2d padding (op)', () => torch.maxPool2d(img(), 2, 2, -1), /^max_pool2d: pad must be non-negative/],
    ['avgPool2d stride', () => F.avgPool2d(img(), 2, { stride: 0 }), /^avgPool2d: 'stride' must be a positive integer/],
    ['avgPool2d padding', () => F.avgPool2d(img(), 2, { padding: -1 }), /^avgPool2d: 'padding' must be a non-negative integer/],
    ['reflect padding', () => F.pad(img(), [1, -1, 0, 0], { mode: 'reflect' }), /^pad: 'padding' must be a non-negative integer/],
    ['unfold step', () => x().unfold(1, 2, 0), /^unfold: step is 0 but must be > 0/],
    ['interpolate size', () => F.interpolate(img(), { size: 0 }), /^interpolate: 'size' must be a positive integer/],
    ['pixelShuffle factor', () => F.pixelShuffle(img(), 0), /^pixelShuffle: 'upscaleFactor' must be a positive integer/],
  ],
  'bad dtype names': [
    ['zeros', () => torch.zeros([2], 'float128' as any), /^zeros: argument 'dtype' has an unknown dtype 'float128'; expected one of uint8/],
    ['toDtype', () => x().toDtype('int4' as any), /^to_dtype: argument 'dtype' has an unknown dtype 'int4'/],
    ['sum', () => x().sum(null, false, 'nope' as any), /^sum: argument 'dtype' has an unknown dtype 'nope'/],
    ['tensor', () => torch.tensor([1], { dtype: 'x' as any }), /^tensor: argument 'dtype' has an unknown dtype 'x'/],
    [
      'Module.to',
      () => new nn.Linear(2, 2).to('float128' as any),
      /^Linear\.to: expected a dtype, a device \('cpu', 'cuda', 'cuda:N'\) or a memory format \('contiguous', 'channelsLast'\), got "float128"/,
    ],
  ],
  'bad options': [
    [
      'mseLoss reduction',
      () => F.mseLoss(x(), x(), { reduction: 'avg' as any }),
      /^mseLoss: 'reduction' must be mean, sum or none, got 'avg'/,
    ],
    [
      'crossEntropy reduction',
      () => F.crossEntropy(x(), torch.tensor([0, 1]), { reduction: 'max' as any }),
      /^crossEntropy: 'reduction' must be/,
    ],
    [
      'loss op reduction',
      () => torch.mseLoss(x(), x(), 'avg' as any),
      /^mse_loss: argument 'reduction' must be 'mean', 'sum' or 'none', got 'avg'/,
    ],
    [
      'labelSmoothing',
      () => F.crossEntropy(x(), torch.tensor([0, 1]), { labelSmoothing: 2 }),
      /^crossEntropy: 'labelSmoothing' must be in \[0, 1\]/,
    ],
    ['dropout p', () => F.dropout(x(), 1.5), /^dropout: 'p' must be in \[0, 1\], got 1\.5/],
    [
      'interpolate mode',
      () => F.interpolate(img(), { size: 3, mode: 'area' as any }),
      /^interpolate: 'mode' must be nearest, bilinear or bicubic/,
    ],
    [
      'batchNorm in evaluation without stats',
      () => F.batchNorm(img(), null, null),
      /^batchNorm: evaluation mode needs runningMean and runningVar/,
    ],
    ['gridSample mode', () => F.gridSample(img(), torch.zeros([1, 2, 2, 2]), { mode: 'area' as any }), /^gridSample: 'mode' must be/],
    ['SGD lr', () => new torch.optim.SGD([torch.ones([1])], { lr: -1 }), /^SGD: 'lr' must be non-negative/],
    ['Adam betas', () => new torch.optim.Adam([torch.ones([1])], { lr: 1, betas: [1, 0.9] }), /^Adam: 'betas' must be in \[0, 1\)/],
    ['clipGradNorm_', () => torch.optim.clipGradNorm_([torch.ones([1])], 0), /^clipGradNorm_: 'maxNorm' must be positive/],
    [
      'MultiStepLR milestones',
      () => new torch.optim.MultiStepLR(new torch.optim.SGD([torch.ones([1])], { lr: 1 }), [3, 2]),
      /^MultiStepLR: 'milestones'/,
    ],
  ],
};

function check([label, run, message]: Case): void {
  assert.throws(
    () => torch.tidy(run),
    (e: unknown) => {
      assert.ok(e instanceof Error, `${label}: threw ${String(e)}, not an Error`);
      assert.match(e.message, message, `${label}`);
      return true;
    },
  );
}

describe('errors name the op or the argument', () => {
  for (const [group, list] of Object.entries(cases)) {
    test(group, () => {
      for (const c of list) check(c);
    });
  }
});

test('the process survives many errors in a row and then does real work', () => {
  const all = Object.values(cases).flat();
  const depth = torch.scopeDepth();
  for (let round = 0; round < 10; round++) for (const c of all) check(c);
  assert.equal(torch.scopeDepth(), depth, 'every tidy scope closed');
  assert.equal(torch.isGradEnabled(), true);
  // Real work afterwards: a few steps of least squares, which must converge.
  torch.tidy(() => {
    torch.manualSeed(0);
    const a = torch.randn([32, 4]);
    const truth = torch.tensor([[1], [-2], [0.5], [3]]);
    const b = a.matmul(truth);
    const w = new nn.Parameter(torch.zeros([4, 1]));
    const opt = new torch.optim.SGD([w], { lr: 0.1 });
    for (let i = 0; i < 200; i++) {
      torch.tidy(() => {
        opt.zeroGrad();
        F.mseLoss(a.matmul(w), b).backward();
        opt.step();
      });
    }
    assert.ok(w.allclose(truth, 1e-3, 1e-3), `converged to ${w.toArray()}`);
  });
});

test('an error inside tidy frees what the scope created', () => {
  let inner: Tensor | undefined;
  assert.throws(() =>
    torch.tidy(() => {
      inner = torch.ones([4]);
      return inner.matmul(torch.ones([5]));
    }),
  );
  assert.equal(inner!.isDisposed, true);
});
