// nn.Module bookkeeping, train/eval behaviour, dtype moves, PyTorch's default initialization,
// random generators, threads and devices.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import * as torch from '../src/index.js';
import type { Tensor } from '../src/index.js';

const { nn } = torch;
const F = nn.functional;

class Block extends nn.Module {
  conv = new nn.Conv2d(3, 4, 3, { padding: 1, bias: false });
  bn = new nn.BatchNorm2d(4);
  forward(x: Tensor): Tensor {
    return this.bn.forward(this.conv.forward(x)).relu();
  }
}

class Net extends nn.Module {
  stem = new Block();
  layers = new nn.ModuleList([new nn.Linear(4, 6), new nn.Linear(6, 6)]);
  drop = new nn.Dropout(0.5);
  head = new nn.Sequential(new nn.Linear(6, 3), nn.ReLU());
  scale = new nn.Parameter(torch.ones([1]));
  notAModule = { weight: torch.ones([2]) };
  constructor() {
    super();
    this.registerBuffer('step_count', torch.zeros([], 'int64'));
    this.registerBuffer('scratch', torch.zeros([2]), false);
  }
  forward(x: Tensor): Tensor {
    let h = F.adaptiveAvgPool2d(this.stem.forward(x), 1).flatten(1);
    for (const layer of this.layers) h = layer.forward(h);
    return this.head.forward(this.drop.forward(h)).mul(this.scale);
  }
}

describe('Module discovery', () => {
  test('parameters, buffers and children are found by field, with dotted names', () =>
    torch.tidy(() => {
      const net = new Net();
      assert.deepEqual(
        [...net.namedParameters()].map(([n]) => n),
        [
          'scale',
          'stem.conv.weight',
          'stem.bn.weight',
          'stem.bn.bias',
          'layers.0.weight',
          'layers.0.bias',
          'layers.1.weight',
          'layers.1.bias',
          'head.0.weight',
          'head.0.bias',
        ],
      );
      assert.deepEqual(
        [...net.namedBuffers()].map(([n, , persistent]) => [n, persistent]),
        [
          ['step_count', true],
          ['scratch', false],
          ['stem.bn.running_mean', true],
          ['stem.bn.running_var', true],
          ['stem.bn.num_batches_tracked', true],
        ],
      );
      assert.deepEqual(
        [...net.namedChildren()].map(([n]) => n),
        ['stem', 'layers', 'drop', 'head'],
      );
      assert.deepEqual(
        [...net.namedModules()].map(([n]) => n),
        ['', 'stem', 'stem.conv', 'stem.bn', 'layers', 'layers.0', 'layers.1', 'drop', 'head', 'head.0', 'head.1'],
      );
      assert.equal(net.numParameters(), 1 + 4 * 3 * 9 + 4 + 4 + (4 * 6 + 6) + (6 * 6 + 6) + (6 * 3 + 3));
      // The state dict holds parameters and persistent buffers only.
      const keys = [...net.stateDict().keys()];
      assert.ok(keys.includes('step_count') && keys.includes('stem.bn.num_batches_tracked'));
      assert.ok(!keys.includes('scratch'));
      assert.equal(keys.length, 10 + 4);
      assert.ok(net.parameters().every((p) => p.requiresGrad && p.isLeaf()));
    }));

  test('a parameter shared by two modules is listed once', () =>
    torch.tidy(() => {
      class Tied extends nn.Module {
        a = new nn.Linear(3, 3);
        b = new nn.Linear(3, 3);
        constructor() {
          super();
          this.b.weight = this.a.weight;
        }
        forward(x: Tensor): Tensor {
          return this.b.forward(this.a.forward(x));
        }
      }
      const names = [...new Tied().namedParameters()].map(([n]) => n);
      assert.deepEqual(names, ['a.weight', 'a.bias', 'b.bias']);
    }));

  test('zeroGrad drops gradients; forward and backward reach every parameter', () =>
    torch.tidy(() => {
      torch.manualSeed(0);
      const net = new Net();
      net
        .forward(torch.randn([2, 3, 5, 5]))
        .sum()
        .backward();
      assert.ok(net.parameters().every((p) => p.grad !== undefined));
      net.zeroGrad();
      assert.ok(net.parameters().every((p) => p.grad === undefined));
    }));
});

describe('train and eval', () => {
  test('train()/eval() reach every submodule', () =>
    torch.tidy(() => {
      const net = new Net();
      assert.ok(net.modules().every((m) => m.training));
      net.eval();
      assert.ok(net.modules().every((m) => !m.training));
      net.train();
      assert.ok(net.modules().every((m) => m.training));
      net.stem.train(false);
      assert.deepEqual(
        net.modules().map((m) => m.training),
        [true, false, false, false, true, true, true, true, true, true, true],
      );
    }));

  test('BatchNorm: batch statistics and running-stat updates in training, running stats in eval', () =>
    torch.tidy(() => {
      torch.manualSeed(1);
      const bn = new nn.BatchNorm2d(3, { momentum: 0.25 });
      torch.noGrad(() => {
        bn.weight!.copy_(torch.tensor([1, 2, 0.5]));
        bn.bias!.copy_(torch.tensor([0, 1, -1]));
      });
      const x = torch.randn([4, 3, 2, 2]).mul(3).add(2);
      const y = bn.forward(x);
      // Training output: normalized with the biased batch variance.
      const mean = x.mean([0, 2, 3], true);
      const biasedVar = x.var([0, 2, 3], 0, true);
      const expected = x
        .sub(mean)
        .div(biasedVar.add(1e-5).sqrt())
        .mul(bn.weight!.reshape([1, 3, 1, 1]))
        .add(bn.bias!.reshape([1, 3, 1, 1]));
      assert.ok(y.allclose(expected, 1e-4, 1e-5));
      // Running stats move by the momentum, towards the unbiased variance.
      assert.ok(bn.runningMean!.allclose(mean.flatten().mul(0.25), 1e-5, 1e-6));
      assert.ok(bn.runningVar!.allclose(x.var([0, 2, 3], 1).mul(0.25).add(0.75), 1e-5, 1e-6));
      assert.equal(bn.buffer('num_batches_tracked').item(), 1);
      bn.forward(x);
      assert.equal(bn.buffer('num_batches_tracked').item(), 2);

      bn.eval();
      const rm = bn.runningMean!.clone();
      const rv = bn.runningVar!.clone();
      const z = torch.randn([2, 3, 2, 2]);
      const out = bn.forward(z);
      const manual = z
        .sub(rm.reshape([1, 3, 1, 1]))
        .div(rv.add(1e-5).sqrt().reshape([1, 3, 1, 1]))
        .mul(bn.weight!.reshape([1, 3, 1, 1]))
        .add(bn.bias!.reshape([1, 3, 1, 1]));
      assert.ok(out.allclose(manual, 1e-5, 1e-6));
      assert.ok(bn.runningMean!.equal(rm) && bn.runningVar!.equal(rv), 'eval leaves the running stats alone');
      assert.equal(bn.buffer('num_batches_tracked').item(), 2, 'and the counter');
      // The same batch gives the same output in eval, whatever else is in it.
      assert.ok(bn.forward(z.narrow(0, 0, 1)).equal(out.narrow(0, 0, 1)));
    }));

  test('BatchNorm without running stats uses batch statistics in eval too', () =>
    torch.tidy(() => {
      const bn = new nn.BatchNorm1d(2, { trackRunningStats: false, affine: false });
      assert.deepEqual([...bn.namedBuffers()], []);
      assert.deepEqual(bn.parameters(), []);
      bn.eval();
      const y = bn.forward(
        torch.tensor(
          [
            [1, 10],
            [3, 30],
          ],
          { dtype: 'float32' },
        ),
      );
      assert.ok(
        y.allclose(
          torch.tensor(
            [
              [-1, -1],
              [1, 1],
            ],
            { dtype: 'float32' },
          ),
          1e-3,
          1e-3,
        ),
      );
    }));

  test('Dropout: identity in eval; in training zeroes about p and scales the rest by 1/(1-p)', () =>
    torch.tidy(() => {
      torch.manualSeed(2);
      const drop = new nn.Dropout(0.3);
      const x = torch.ones([100, 100]);
      const y = drop.forward(x);
      const kept = y.ne(0).toDtype('float32').mean().item();
      assert.ok(Math.abs(kept - 0.7) < 0.02, `kept ${kept}`);
      assert.ok(y.maskedSelect(y.ne(0)).allclose(torch.fullLike(y.maskedSelect(y.ne(0)), 1 / 0.7)));
      drop.eval();
      assert.ok(drop.forward(x).equal(x));
      const drop2d = new nn.Dropout2d(0.5);
      const feature = drop2d.forward(torch.ones([8, 16, 3, 3]));
      const perChannel = feature
        .amax([2, 3])
        .sub(feature.amin([2, 3]))
        .abs()
        .max()
        .item();
      assert.equal(perChannel, 0, 'Dropout2d drops whole channels');
      drop2d.eval();
      assert.ok(drop2d.forward(torch.ones([2, 4, 3, 3])).equal(torch.ones([2, 4, 3, 3])));
    }));
});

describe('Module.to', () => {
  test("to('float64') converts floating parameters and buffers in place", () =>
    torch.tidy(() => {
      torch.manualSeed(3);
      const net = new Net();
      const params = net.parameters();
      const before = net.stem.conv.weight.clone();
      const opt = new torch.optim.SGD(net.parameters(), { lr: 0.1 });
      assert.equal(net.to('float64'), net);
      assert.ok(net.parameters().every((p, i) => p === params[i] && p.dtype === 'float64' && p.requiresGrad));
      assert.equal(net.buffer('step_count').dtype, 'int64');
      assert.equal(net.stem.bn.runningMean!.dtype, 'float64');
      assert.equal(net.stem.bn.buffer('num_batches_tracked').dtype, 'int64');
      assert.ok(net.stem.conv.weight.toDtype('float32').equal(before));
      // Still trains: the optimizer holds the same parameter objects.
      net
        .forward(torch.randn([2, 3, 4, 4], null, 'float64'))
        .sum()
        .backward();
      opt.step();
      assert.equal(net.stem.conv.weight.dtype, 'float64');
      net.to('cpu');
      assert.equal(net.stem.conv.weight.device.type, 'cpu');
    }));

  test("bfloat16 parameters count as floating: to('bfloat16') and back converts them", () =>
    torch.tidy(() => {
      torch.manualSeed(4);
      const net = new Net();
      const before = net.stem.conv.weight.clone();
      net.to('bfloat16');
      assert.equal(net.stem.conv.weight.dtype, 'bfloat16');
      assert.equal(net.stem.bn.runningMean!.dtype, 'bfloat16');
      assert.equal(net.buffer('step_count').dtype, 'int64');
      net.to('float32');
      assert.ok(net.parameters().every((p) => p.dtype === 'float32' && p.requiresGrad));
      assert.equal(net.stem.bn.runningMean!.dtype, 'float32');
      assert.equal(net.buffer('step_count').dtype, 'int64');
      assert.ok(net.stem.conv.weight.allclose(before, 1e-2, 1e-2));
      assert.ok(!net.stem.conv.weight.equal(before)); // rounded through bfloat16's 8-bit mantissa
    }));

  test('to() refuses what is neither a dtype nor a device and takes a Device object as it is', () =>
    torch.tidy(() => {
      const net = new Net();
      assert.throws(() => net.to('cuda:x' as any), /^TypeError: Net\.to: expected a dtype, a device/);
      assert.equal(net.to(torch.device('cpu')), net);
      assert.throws(() => torch.ones([2]).to('tpu' as any), /^TypeError: to: expected a dtype or a device/);
      assert.equal(torch.ones([2]).to(torch.device('cpu')).device.type, 'cpu');
    }));
});

describe('in-place ReLU', () => {
  test('ReLU({ inplace: true }) overwrites and returns its input; after BatchNorm, gradients match the copying ReLU', () =>
    torch.tidy(() => {
      torch.manualSeed(9);
      const x = torch.randn([4, 3, 5, 5]);
      const net = (inplace: boolean) => new nn.Sequential(new nn.BatchNorm2d(3), nn.ReLU({ inplace }));
      const [copying, overwriting] = [net(false), net(true)];
      const a = torch.randn([4, 3, 5, 5]);
      const b = a.clone();
      assert.equal(nn.ReLU({ inplace: true }).forward(b), b);
      assert.ok(b.equal(a.relu()));
      const xs = [x.clone().requiresGrad_(), x.clone().requiresGrad_()];
      const ys = [copying.forward(xs[0]), overwriting.forward(xs[1])];
      assert.ok(ys[0].equal(ys[1]));
      ys.forEach((y) => y.mul(y).sum().backward());
      assert.ok(xs[0].grad!.allclose(xs[1].grad!, 1e-6, 1e-6));
      assert.ok(copying.parameters()[0].grad!.allclose(overwriting.parameters()[0].grad!, 1e-6, 1e-6));
    }));
});

describe('memory format', () => {
  test('Conv2d stores its weight channels-last by default, and so does its output; values match NCHW', () =>
    torch.tidy(() => {
      torch.manualSeed(5);
      const fast = new nn.Conv2d(3, 8, 3, { padding: 1 });
      const plain = new nn.Conv2d(3, 8, 3, { padding: 1, memoryFormat: 'contiguous' });
      assert.ok(fast.weight.isChannelsLast() && !fast.weight.isContiguous());
      assert.ok(plain.weight.isContiguous());
      plain.loadStateDict(fast.stateDict());
      assert.ok(plain.weight.equal(fast.weight));
      const x = torch.randn([2, 3, 5, 6]);
      const [yFast, yPlain] = [fast.forward(x), plain.forward(x)];
      assert.deepEqual(yFast.shape, [2, 8, 5, 6]);
      assert.ok(yFast.isChannelsLast() && yPlain.isContiguous());
      assert.ok(yFast.allclose(yPlain, 1e-5, 1e-5));
      // Elements come out in logical NCHW order whatever the layout.
      const [a, b] = [yFast.toTypedArray() as Float32Array, yPlain.toTypedArray() as Float32Array];
      assert.ok(a.every((v, k) => Math.abs(v - b[k]) < 1e-5));
      assert.ok(yFast.flatten(1).allclose(yPlain.flatten(1), 1e-5, 1e-5));
      yFast.square().sum().backward();
      yPlain.square().sum().backward();
      assert.ok(fast.weight.grad!.isChannelsLast());
      assert.ok(fast.weight.grad!.allclose(plain.weight.grad!, 1e-4, 1e-4));
      assert.ok(fast.bias!.grad!.allclose(plain.bias!.grad!, 1e-4, 1e-4));
    }));

  test("to('contiguous') and to('channelsLast') relayout 4-d tensors only; saved files hold NCHW order", () =>
    torch.tidy(() => {
      const net = new Net();
      const before = net.stem.conv.weight.clone();
      assert.equal(net.to('contiguous'), net);
      assert.ok(net.stem.conv.weight.isContiguous() && net.stem.conv.weight.equal(before));
      net.to('channelsLast');
      assert.ok(net.stem.conv.weight.isChannelsLast() && net.stem.conv.weight.equal(before));
      assert.ok(net.layers[0].parameters().every((p) => p.isContiguous()));
      const bytes = torch.safetensors.serialize({ w: net.stem.conv.weight });
      const back = torch.safetensors.deserialize(bytes).tensors.get('w')!;
      assert.ok(back.isContiguous() && back.equal(before));
    }));

  test('a bad memoryFormat is named', () => {
    assert.throws(
      () => new nn.Conv2d(3, 8, 3, { memoryFormat: 'nhwc' as any }),
      /^TypeError: Conv2d: 'memoryFormat' must be 'contiguous' or 'channelsLast', got "nhwc"/,
    );
  });
});

describe('default initialization (as PyTorch)', () => {
  const checkUniform = (t: Tensor, bound: number, label: string) => {
    const values = t.toDtype('float64');
    assert.ok(values.abs().max().item() <= bound, `${label}: all within ±${bound}`);
    const std = values.std().item();
    const expected = bound / Math.sqrt(3);
    assert.ok(Math.abs(std / expected - 1) < 0.06, `${label}: std ${std}, uniform std ${expected}`);
    assert.ok(Math.abs(values.mean().item()) < 0.1 * bound, `${label}: mean ${values.mean().item()}`);
  };

  test('Linear: kaiming uniform with a = sqrt(5) gives weights and bias in ±1/sqrt(fanIn)', () =>
    torch.tidy(() => {
      torch.manualSeed(4);
      const lin = new nn.Linear(50, 400);
      checkUniform(lin.weight, 1 / Math.sqrt(50), 'weight');
      checkUniform(lin.bias!, 1 / Math.sqrt(50), 'bias');
    }));

  test('Conv2d and grouped Conv2d: fanIn = inChannels / groups * kh * kw', () =>
    torch.tidy(() => {
      torch.manualSeed(5);
      const conv = new nn.Conv2d(16, 64, 3);
      checkUniform(conv.weight, 1 / Math.sqrt(16 * 9), 'conv weight');
      assert.ok(conv.bias!.abs().max().item() <= 1 / Math.sqrt(16 * 9), 'conv bias within ±1/sqrt(fanIn)');
      const grouped = new nn.Conv2d(32, 64, [3, 2], { groups: 4 });
      assert.deepEqual(grouped.weight.shape, [64, 8, 3, 2]);
      checkUniform(grouped.weight, 1 / Math.sqrt(8 * 6), 'grouped weight');
    }));

  test('ConvTranspose2d: fanIn from the weight layout [in, out/groups, kh, kw], as PyTorch computes it', () =>
    torch.tidy(() => {
      torch.manualSeed(6);
      const conv = new nn.ConvTranspose2d(64, 32, 3);
      assert.deepEqual(conv.weight.shape, [64, 32, 3, 3]);
      checkUniform(conv.weight, 1 / Math.sqrt(32 * 9), 'weight');
    }));

  test('norm layers start as the identity', () =>
    torch.tidy(() => {
      const bn = new nn.BatchNorm2d(5);
      assert.deepEqual(bn.weight!.toArray(), [1, 1, 1, 1, 1]);
      assert.deepEqual(bn.bias!.toArray(), [0, 0, 0, 0, 0]);
      assert.deepEqual(bn.runningMean!.toArray(), [0, 0, 0, 0, 0]);
      assert.deepEqual(bn.runningVar!.toArray(), [1, 1, 1, 1, 1]);
      assert.equal(bn.buffer('num_batches_tracked').item(), 0);
      const ln = new nn.LayerNorm([2, 3]);
      assert.ok(ln.weight!.equal(torch.ones([2, 3])) && ln.bias!.equal(torch.zeros([2, 3])));
      const gn = new nn.GroupNorm(2, 4);
      assert.ok(gn.weight!.equal(torch.ones([4])) && gn.bias!.equal(torch.zeros([4])));
      const x = torch.randn([2, 4, 3, 3]);
      assert.ok(gn.forward(x).allclose(F.groupNorm(x, 2), 1e-6, 1e-6));
    }));

  test('init functions follow their formulas', () =>
    torch.tidy(() => {
      torch.manualSeed(7);
      const w = torch.empty([200, 100]);
      nn.init.xavierUniform_(w, 2);
      checkUniform(w, 2 * Math.sqrt(6 / 300), 'xavierUniform_');
      nn.init.kaimingNormal_(w, { nonlinearity: 'relu' });
      assert.ok(Math.abs(w.std().item() / (Math.SQRT2 / 10) - 1) < 0.05);
      assert.equal(nn.init.calculateGain('leaky_relu', Math.sqrt(5)), Math.sqrt(1 / 3));
      assert.throws(() => nn.init.calculateFanInAndFanOut(torch.ones([3])), /init: fan in and fan out need at least 2 dimensions/);
    }));
});

describe('random generators', () => {
  test('the same seed gives the same numbers; another seed does not', () =>
    torch.tidy(() => {
      const a = torch.randn([5], new torch.Generator(42));
      const b = torch.randn([5], new torch.Generator(42));
      const c = torch.randn([5], new torch.Generator(43));
      assert.ok(a.equal(b));
      assert.ok(!a.equal(c));
      const g = new torch.Generator(1);
      const first = torch.rand([3], g);
      g.manualSeed(1);
      assert.ok(torch.rand([3], g).equal(first));
    }));

  test('getState/setState replays every kind of draw', () =>
    torch.tidy(() => {
      const g = new torch.Generator(9);
      torch.randn([7], g); // move off the seed, and leave a cached normal behind
      const state = g.getState();
      assert.equal(state.dtype, 'uint8');
      const draw = () => [
        torch.randn([3], g),
        torch.rand([3], g),
        torch.randint(0, 100, [4], g),
        torch.randperm(6, g),
        torch.empty([4]).normal_(1, 2, g),
        torch.empty([4]).uniform_(-1, 1, g),
        torch.full([6], 0.5).bernoulli(0.5, g),
      ];
      const once = draw();
      g.setState(state);
      const again = draw();
      once.forEach((t, i) => assert.ok(t.equal(again[i]), `draw ${i}`));
    }));

  test('a private generator is independent of the global one', () =>
    torch.tidy(() => {
      const g = new torch.Generator(5);
      const expected = torch.randn([4], new torch.Generator(5));
      torch.manualSeed(0);
      torch.randn([100]); // global draws in between change nothing
      assert.ok(torch.randn([4], g).equal(expected));
    }));

  test('manualSeed makes the global generator, dropout and initialization reproducible', () =>
    torch.tidy(() => {
      const run = () => {
        torch.manualSeed(123);
        const lin = new nn.Linear(4, 3);
        return [torch.randn([3]), F.dropout(torch.ones([10]), 0.5), lin.weight.clone()];
      };
      const a = run();
      const b = run();
      a.forEach((t, i) => assert.ok(t.equal(b[i]), `draw ${i}`));
      const global = torch.defaultGenerator();
      const state = global.getState();
      const next = torch.randn([3]);
      global.setState(state);
      assert.ok(torch.randn([3]).equal(next));
    }));
});

describe('runtime', () => {
  test('setNumThreads/getNumThreads', () => {
    const original = torch.getNumThreads();
    assert.ok(original >= 1);
    try {
      torch.setNumThreads(1);
      assert.equal(torch.getNumThreads(), 1);
      assert.ok(
        torch
          .ones([64, 64])
          .matmul(torch.ones([64, 64]))
          .equal(torch.full([64, 64], 64)),
      );
      torch.setNumThreads(2);
      assert.equal(torch.getNumThreads(), 2);
    } finally {
      torch.setNumThreads(original);
    }
    assert.equal(torch.getNumThreads(), original);
  });

  test('a worker thread that loads the addon keeps the thread count and the CPU cache the main thread has', async () => {
    const original = torch.getNumThreads();
    torch.setNumThreads(1);
    try {
      const url = new URL('../src/index.js', import.meta.url).href;
      const worker = new Worker(
        `import('${url}').then((t) => require('node:worker_threads').parentPort.postMessage([t.getNumThreads(), t.cpuCache.stats().enabled]));`,
        { eval: true },
      );
      const [threads, cacheEnabled] = await new Promise<[number, boolean]>((resolve, reject) => {
        worker.once('message', resolve).once('error', reject);
      });
      await worker.terminate();
      assert.equal(threads, 1, 'the worker sees the main thread setting');
      assert.equal(cacheEnabled, true);
      assert.equal(torch.getNumThreads(), 1);
    } finally {
      torch.setNumThreads(original);
    }
  });

  test('runtimeInfo names the libtorch version', () => {
    const info = torch.runtimeInfo();
    assert.match(info.libtorchVersion, /^1\.13/);
    assert.equal(typeof info.cudaAvailable, 'boolean');
  });

  test('devices parse and print; tensors live on the CPU by default', () => {
    assert.equal(torch.device('cuda').type, 'cuda');
    assert.equal(torch.device('cuda').index, undefined);
    assert.equal(torch.device('cuda:1').index, 1);
    assert.equal(String(torch.device('cuda:1')), 'cuda:1');
    assert.equal(torch.device(torch.device('cpu')).type, 'cpu');
    assert.throws(() => torch.device('gpu'), /device: expected 'cpu', 'cuda' or 'cuda:N', got 'gpu'/);
    torch.tidy(() => {
      const t = torch.ones([2]);
      assert.equal(t.device.type, 'cpu');
      assert.equal(t.cpu().device.type, 'cpu');
      assert.equal(t.to('cpu').device.type, 'cpu');
    });
  });

  const cudaSkip = torch.cuda.isAvailable() ? false : 'no CUDA in this libtorch';

  test('CUDA: tensors move to the GPU and back', { skip: cudaSkip }, () =>
    torch.tidy(() => {
      const t = torch.arange(0, 6, 1, 'float32');
      const g = t.to('cuda');
      assert.equal(g.device.type, 'cuda');
      assert.deepEqual(g.mul(2).cpu().toArray(), [0, 2, 4, 6, 8, 10]);
      assert.equal(torch.zeros([2], 'float32', 'cuda').device.type, 'cuda');
    }),
  );

  test('CUDA: a module trains on the GPU and matches the CPU', { skip: cudaSkip }, () =>
    torch.tidy(() => {
      torch.manualSeed(0);
      const cpu = new nn.Linear(4, 2);
      const gpu = new nn.Linear(4, 2);
      gpu.loadStateDict(cpu.stateDict());
      gpu.to('cuda');
      const x = torch.randn([8, 4]);
      assert.ok(gpu.forward(x.to('cuda')).cpu().allclose(cpu.forward(x), 1e-4, 1e-5));
    }),
  );
});
