// Values against PyTorch: test/fixtures/make_fixtures.py ran the same computations in Python
// (torch 1.13) and wrote inputs and outputs as safetensors; here we replay them through our API.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/index.js';
import type { Tensor } from '../src/index.js';

const { nn, optim, safetensors } = torch;
const F = nn.functional;

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures');

function fixture(name: string): { get: (key: string) => Tensor; metadata: Record<string, string> } {
  const { tensors, metadata } = safetensors.load(join(fixtures, name));
  return {
    metadata,
    get: (key: string) => {
      const t = tensors.get(key);
      if (!t) throw new Error(`${name} has no tensor '${key}'`);
      return t;
    },
  };
}

/** |actual - expected| <= rtol |expected| + atol elementwise, with the same shape. */
function assertClose(actual: Tensor, expected: Tensor, label: string, rtol = 1e-5, atol = 1e-6): void {
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`);
  const a = actual.toDtype('float64').toArray();
  const e = expected.toDtype('float64').toArray();
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < e.length; i++) {
    const excess = Math.abs(a[i] - e[i]) - (rtol * Math.abs(e[i]) + atol);
    if (!(excess <= worstExcess)) {
      worst = i;
      worstExcess = Number.isNaN(excess) ? Infinity : excess;
    }
  }
  assert.ok(worst < 0, `${label}: element ${worst} is ${a[worst]}, PyTorch has ${e[worst]}`);
}

describe('conv2d and convTranspose2d', () => {
  test('grouped, strided, dilated conv2d: values and gradients', () =>
    torch.tidy(() => {
      const f = fixture('conv.safetensors');
      const x = f.get('x').requiresGrad_();
      const w = f.get('w').requiresGrad_();
      const b = f.get('b').requiresGrad_();
      const y = F.conv2d(x, w, b, { stride: 2, padding: 1, dilation: 2, groups: 2 });
      assertClose(y, f.get('y'), 'y');
      y.backward({ gradient: f.get('gy') });
      assertClose(x.grad!, f.get('gx'), 'grad x');
      assertClose(w.grad!, f.get('gw'), 'grad w');
      assertClose(b.grad!, f.get('gb'), 'grad b');
    }));

  test('plain conv2d and convTranspose2d', () =>
    torch.tidy(() => {
      const f = fixture('conv.safetensors');
      const x = f.get('x');
      assertClose(F.conv2d(x, f.get('w2'), null, { padding: 1 }), f.get('y2'), 'conv2d');
      assertClose(
        F.convTranspose2d(x, f.get('wt'), f.get('bt'), { stride: 2, padding: 1, outputPadding: 1 }),
        f.get('yt'),
        'convTranspose2d',
      );
    }));
});

describe('BatchNorm2d', () => {
  test('training updates running stats; evaluation uses them', () =>
    torch.tidy(() => {
      const f = fixture('batchnorm.safetensors');
      const bn = new nn.BatchNorm2d(3, { momentum: Number(f.metadata.momentum), eps: Number(f.metadata.eps) });
      bn.loadStateDict({ weight: f.get('weight'), bias: f.get('bias') }, false);
      assertClose(bn.forward(f.get('x1')), f.get('y1'), 'train step 1');
      assertClose(bn.forward(f.get('x2')), f.get('y2'), 'train step 2');
      assertClose(bn.runningMean!, f.get('running_mean'), 'running mean');
      assertClose(bn.runningVar!, f.get('running_var'), 'running var (unbiased)');
      assert.equal(bn.buffer('num_batches_tracked').item(), f.get('num_batches_tracked').item());
      bn.eval();
      assertClose(bn.forward(f.get('x3')), f.get('y3'), 'eval');
    }));
});

describe('crossEntropy', () => {
  const cases: [string, (logits: Tensor, target: Tensor, ignored: Tensor, weight: Tensor, probs: Tensor) => Tensor][] = [
    ['plain', (l, t) => F.crossEntropy(l, t)],
    ['smooth', (l, t) => F.crossEntropy(l, t, { labelSmoothing: 0.1 })],
    ['smooth_weight', (l, t, _i, w) => F.crossEntropy(l, t, { weight: w, labelSmoothing: 0.2 })],
    ['smooth_ignore', (l, _t, i) => F.crossEntropy(l, i, { labelSmoothing: 0.1 })],
    ['smooth_weight_ignore_sum', (l, _t, i, w) => F.crossEntropy(l, i, { weight: w, labelSmoothing: 0.3, reduction: 'sum' })],
    ['smooth_none', (l, t) => F.crossEntropy(l, t, { labelSmoothing: 0.1, reduction: 'none' })],
    ['soft_targets', (l, _t, _i, _w, p) => F.crossEntropy(l, p, { labelSmoothing: 0.1 })],
  ];
  for (const [name, fn] of cases) {
    test(name, () =>
      torch.tidy(() => {
        const f = fixture('cross_entropy.safetensors');
        const out = fn(f.get('logits'), f.get('target'), f.get('target_ignored'), f.get('weight'), f.get('probs'));
        assertClose(out, f.get(name), name);
      }),
    );
  }

  test('gradient with class weights and label smoothing', () =>
    torch.tidy(() => {
      const f = fixture('cross_entropy.safetensors');
      const logits = f.get('logits').requiresGrad_();
      F.crossEntropy(logits, f.get('target'), { weight: f.get('weight'), labelSmoothing: 0.2 }).backward();
      assertClose(logits.grad!, f.get('grad_smooth_weight'), 'grad');
    }));
});

describe('interpolate', () => {
  const cases: [string, torch.nn.functional.InterpolateOptions][] = [
    ['bilinear_8x9', { size: [8, 9], mode: 'bilinear' }],
    ['bilinear_8x9_ac', { size: [8, 9], mode: 'bilinear', alignCorners: true }],
    ['bilinear_3x4', { size: [3, 4], mode: 'bilinear' }],
    ['bilinear_x1.5', { scaleFactor: 1.5, mode: 'bilinear' }],
    ['bicubic_7x11', { size: [7, 11], mode: 'bicubic' }],
    ['bicubic_7x11_ac', { size: [7, 11], mode: 'bicubic', alignCorners: true }],
    ['bicubic_x2', { scaleFactor: 2, mode: 'bicubic' }],
    ['bicubic_x1.5', { scaleFactor: 1.5, mode: 'bicubic' }],
    ['nearest_x1.5', { scaleFactor: 1.5, mode: 'nearest' }],
    ['nearest_7x4', { size: [7, 4], mode: 'nearest' }],
  ];
  for (const [name, options] of cases) {
    test(name, () =>
      torch.tidy(() => {
        const f = fixture('interpolate.safetensors');
        assertClose(F.interpolate(f.get('x'), options), f.get(name), name);
      }),
    );
  }
});

describe('optimizers: three steps on mse(linear(x), y)', () => {
  const configs: [string, (params: Tensor[]) => torch.optim.Optimizer<{ lr: number }>][] = [
    ['sgd', (p) => new optim.SGD(p, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 })],
    ['sgd_dampening', (p) => new optim.SGD(p, { lr: 0.05, momentum: 0.8, dampening: 0.3 })],
    ['adam', (p) => new optim.Adam(p, { lr: 0.01, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.05 })],
    ['adamw', (p) => new optim.AdamW(p, { lr: 0.01, weightDecay: 0.1 })],
  ];
  for (const [name, make] of configs) {
    test(name, () =>
      torch.tidy(() => {
        const f = fixture('optim.safetensors');
        const w = new nn.Parameter(f.get('w0').clone());
        const b = new nn.Parameter(f.get('b0').clone());
        const opt = make([w, b]);
        for (let step = 1; step <= 3; step++) {
          torch.tidy(() => {
            opt.zeroGrad();
            F.mseLoss(F.linear(f.get('x'), w, b), f.get('y')).backward();
            opt.step();
          });
          assertClose(w, f.get(`${name}_w${step}`), `${name} weight after step ${step}`);
          assertClose(b, f.get(`${name}_b${step}`), `${name} bias after step ${step}`);
        }
      }),
    );
  }
});

describe('learning-rate schedules', () => {
  function record(opt: torch.optim.Optimizer<{ lr: number }>, sched: torch.optim.LRScheduler, steps: number): number[] {
    const lrs = [opt.lr];
    for (let i = 0; i < steps; i++) {
      sched.step();
      lrs.push(opt.lr);
    }
    return lrs;
  }
  const param = () => new nn.Parameter(torch.zeros([1]));

  test('MultiStepLR', () =>
    torch.tidy(() => {
      const f = fixture('schedulers.safetensors');
      const opt = new optim.SGD([param()], { lr: Number(f.metadata.lr) });
      const lrs = record(opt, new optim.MultiStepLR(opt, [3, 6, 7], 0.5), 10);
      assertClose(torch.tensor(lrs, { dtype: 'float64' }), f.get('multistep'), 'lr', 1e-12, 0);
    }));

  test('cosine decay matches CosineAnnealingLR', () =>
    torch.tidy(() => {
      const f = fixture('schedulers.safetensors');
      const opt = new optim.SGD([param()], { lr: Number(f.metadata.lr) });
      const sched = new optim.CosineWithWarmup(opt, { warmupSteps: 0, totalSteps: 12, minLrRatio: Number(f.metadata.cosine_min_ratio) });
      assertClose(torch.tensor(record(opt, sched, 12), { dtype: 'float64' }), f.get('cosine'), 'lr', 1e-9, 1e-12);
    }));

  test('warmup then cosine matches LinearLR followed by CosineAnnealingLR', () =>
    torch.tidy(() => {
      const f = fixture('schedulers.safetensors');
      const opt = new optim.SGD([param()], { lr: Number(f.metadata.lr) });
      const total = Number(f.metadata.total);
      const sched = new optim.CosineWithWarmup(opt, {
        warmupSteps: Number(f.metadata.warmup),
        totalSteps: total,
        minLrRatio: Number(f.metadata.warmup_min_ratio),
      });
      assertClose(torch.tensor(record(opt, sched, total), { dtype: 'float64' }), f.get('warmup_cosine'), 'lr', 1e-9, 1e-12);
    }));
});

describe('clipGradNorm_', () => {
  const cases: [string, number, number][] = [
    ['l2', 1, 2],
    ['l1', 2, 1],
    ['inf', 0.5, Infinity],
    ['noclip', 100, 2],
  ];
  for (const [name, maxNorm, normType] of cases) {
    test(`${name} norm, max ${maxNorm}`, () =>
      torch.tidy(() => {
        const f = fixture('clip.safetensors');
        const p1 = new nn.Parameter(torch.zeros([4, 3]));
        const p2 = new nn.Parameter(torch.zeros([5]));
        p1.grad = f.get(`${name}_g1`).clone();
        p2.grad = f.get(`${name}_g2`).clone();
        const total = optim.clipGradNorm_([p1, p2], maxNorm, normType);
        assertClose(torch.tensor([total], { dtype: 'float32' }), f.get(`${name}_total`), 'total norm');
        assertClose(p1.grad!, f.get(`${name}_clipped1`), 'first gradient');
        assertClose(p2.grad!, f.get(`${name}_clipped2`), 'second gradient');
      }));
  }
});
