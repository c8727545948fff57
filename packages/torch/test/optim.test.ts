// Optimizers and schedulers: update rules, parameter groups, and checkpoint/resume through
// their state dicts (the continued run must match an uninterrupted one exactly).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as torch from '../src/index.js';
import type { Tensor } from '../src/index.js';

const { nn, optim } = torch;
const F = nn.functional;

type Make = (params: Tensor[]) => torch.optim.Optimizer<{ lr: number }>;

const optimizers: [string, Make][] = [
  ['SGD', (p) => new optim.SGD(p, { lr: 0.1 })],
  ['SGD momentum, nesterov, weight decay', (p) => new optim.SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-2 })],
  ['SGD momentum, dampening', (p) => new optim.SGD(p, { lr: 0.05, momentum: 0.8, dampening: 0.2 })],
  ['Adam', (p) => new optim.Adam(p, { lr: 0.01, weightDecay: 1e-3 })],
  ['AdamW', (p) => new optim.AdamW(p, { lr: 0.01, betas: [0.8, 0.95] })],
];

/** A fixed regression problem and a two-layer model on it. */
function problem(seed: number) {
  const g = new torch.Generator(seed);
  const x = torch.randn([32, 5], g);
  const y = torch.randn([32, 2], g);
  return { x, y };
}

function makeModel(seed: number): torch.nn.Sequential {
  torch.manualSeed(seed);
  return new nn.Sequential(new nn.Linear(5, 8), nn.Tanh(), new nn.Linear(8, 2));
}

function train(model: torch.nn.Module, opt: torch.optim.Optimizer<{ lr: number }>, data: { x: Tensor; y: Tensor }, steps: number): void {
  for (let i = 0; i < steps; i++) {
    torch.tidy(() => {
      opt.zeroGrad();
      F.mseLoss(model.forward(data.x), data.y).backward();
      opt.step();
    });
  }
}

describe('update rules', () => {
  test('plain SGD is p - lr * grad; parameters without a gradient are skipped', () =>
    torch.tidy(() => {
      const p = new nn.Parameter(torch.tensor([1, -2, 3], { dtype: 'float32' }));
      const idle = new nn.Parameter(torch.tensor([5], { dtype: 'float32' }));
      const opt = new optim.SGD([p, idle], { lr: 0.5 });
      p.mul(p).sum().backward(); // grad 2p
      opt.step();
      assert.deepEqual(p.toArray(), [0, 0, 0]);
      assert.deepEqual(idle.toArray(), [5]);
      assert.equal(opt.state.has(idle), false);
    }));

  test("Adam's first step moves each parameter by lr against the gradient's sign", () =>
    torch.tidy(() => {
      const p = new nn.Parameter(torch.tensor([1, -2, 3], { dtype: 'float64' }));
      const opt = new optim.Adam([p], { lr: 0.1 });
      p.mul(torch.tensor([2, 5, -1], { dtype: 'float64' }))
        .sum()
        .backward();
      opt.step();
      assert.ok(p.allclose(torch.tensor([0.9, -2.1, 3.1], { dtype: 'float64' }), 1e-6, 1e-7));
      assert.equal(opt.state.get(p)!.step, 1);
    }));

  test('AdamW decays weights even where the gradient is zero; Adam does not', () =>
    torch.tidy(() => {
      const a = new nn.Parameter(torch.tensor([2], { dtype: 'float32' }));
      const b = new nn.Parameter(torch.tensor([2], { dtype: 'float32' }));
      const adamw = new optim.AdamW([a], { lr: 0.1, weightDecay: 0.5 });
      const adam = new optim.Adam([b], { lr: 0.1 });
      a.grad = torch.zeros([1]);
      b.grad = torch.zeros([1]);
      adamw.step();
      adam.step();
      assert.ok(Math.abs(a.item() - 2 * (1 - 0.1 * 0.5)) < 1e-6);
      assert.equal(b.item(), 2);
    }));

  for (const [name, make] of optimizers) {
    test(`${name} lowers the loss`, () =>
      torch.tidy(() => {
        const data = problem(1);
        const model = makeModel(1);
        const loss = () => torch.noGrad(() => F.mseLoss(model.forward(data.x), data.y).item());
        const before = loss();
        train(model, make(model.parameters()), data, 30);
        assert.ok(loss() < before, `${before} -> ${loss()}`);
      }));
  }
});

describe('parameter groups and learning rates', () => {
  test('each group keeps its own options', () =>
    torch.tidy(() => {
      const a = new nn.Parameter(torch.tensor([1], { dtype: 'float32' }));
      const b = new nn.Parameter(torch.tensor([1], { dtype: 'float32' }));
      const opt = new optim.SGD([{ params: [a] }, { params: [b], options: { lr: 0.01 } }], { lr: 0.1 });
      a.grad = torch.ones([1]);
      b.grad = torch.ones([1]);
      opt.step();
      assert.ok(Math.abs(a.item() - 0.9) < 1e-7 && Math.abs(b.item() - 0.99) < 1e-7);
      assert.equal(opt.lr, 0.1);
      opt.setLr([0.5, 0.25]);
      assert.deepEqual(
        opt.paramGroups.map((g) => g.options.lr),
        [0.5, 0.25],
      );
      opt.setLr(0.2);
      assert.deepEqual(
        opt.paramGroups.map((g) => g.options.lr),
        [0.2, 0.2],
      );
      assert.throws(() => new optim.SGD([], { lr: 0.1 }), /SGD: got an empty parameter list/);
      assert.throws(() => new optim.SGD([a], { lr: 0.1, nesterov: true }), /SGD: 'nesterov' needs a positive momentum/);
    }));

  test('zeroGrad clears gradients', () =>
    torch.tidy(() => {
      const p = new nn.Parameter(torch.ones([2]));
      const opt = new optim.SGD([p], { lr: 1 });
      p.sum().backward();
      opt.zeroGrad();
      assert.equal(p.grad, undefined);
    }));
});

describe('optimizer state dicts', () => {
  for (const [name, make] of optimizers) {
    test(`${name}: resuming from stateDict continues exactly as the uninterrupted run`, () =>
      torch.tidy(() => {
        const data = problem(2);
        // Reference: 8 uninterrupted steps.
        const reference = makeModel(3);
        const refOpt = make(reference.parameters());
        train(reference, refOpt, data, 8);

        // Interrupted: 4 steps, checkpoint, more steps on the old run (they must not leak into the
        // checkpoint), then a fresh model and optimizer resume from the checkpoint for 4 steps.
        const first = makeModel(3);
        const firstOpt = make(first.parameters());
        train(first, firstOpt, data, 4);
        const modelState = new Map([...first.stateDict()].map(([k, v]) => [k, v.clone()]));
        const optState = firstOpt.stateDict();
        const resumed = makeModel(99);
        const resumedOpt = make(resumed.parameters());
        resumed.loadStateDict(modelState);
        resumedOpt.loadStateDict(optState);
        train(first, firstOpt, data, 3);
        train(resumed, resumedOpt, data, 4);

        for (const [k, t] of reference.stateDict()) {
          assert.ok(resumed.stateDict().get(k)!.equal(t), `${name}: ${k} differs from the uninterrupted run`);
        }
      }));
  }

  test('the state dict is indexed by parameter position, as PyTorch', () =>
    torch.tidy(() => {
      const model = makeModel(4);
      const [l0, l2] = [model[0] as torch.nn.Linear, model[2] as torch.nn.Linear];
      const opt = new optim.Adam([{ params: [l0.weight, l0.bias!] }, { params: [l2.weight, l2.bias!], options: { lr: 0.5 } }], {
        lr: 0.01,
      });
      train(model, opt, problem(4), 2);
      const sd = opt.stateDict();
      assert.deepEqual(Object.keys(sd.state), ['0', '1', '2', '3']);
      assert.deepEqual(
        sd.paramGroups.map((g) => [g.lr, g.params]),
        [
          [0.01, [0, 1]],
          [0.5, [2, 3]],
        ],
      );
      assert.equal(sd.state[2].step, 2);
      assert.deepEqual((sd.state[2].expAvg as Tensor).shape, [2, 8]);
      // Tensors can go through safetensors and come back.
      const flat = new Map<string, Tensor>();
      for (const [i, s] of Object.entries(sd.state))
        for (const [k, v] of Object.entries(s)) if (typeof v !== 'number') flat.set(`${i}.${k}`, v);
      const back = torch.safetensors.deserialize(torch.safetensors.serialize(flat)).tensors;
      const restored = { ...sd, state: Object.fromEntries(Object.entries(sd.state).map(([i, s]) => [i, { ...s }])) };
      for (const [key, t] of back) {
        const [i, k] = key.split('.');
        restored.state[Number(i)][k] = t;
      }
      const other = new optim.Adam([{ params: [l0.weight, l0.bias!] }, { params: [l2.weight, l2.bias!] }], { lr: 0.01 });
      other.loadStateDict(restored);
      assert.equal(other.paramGroups[1].options.lr, 0.5);
      assert.ok((other.state.get(l2.weight)!.expAvg as Tensor).equal(sd.state[2].expAvg as Tensor));
    }));

  test('loading a state dict of another shape is refused with the reason', () =>
    torch.tidy(() => {
      const a = new nn.Parameter(torch.ones([2]));
      const b = new nn.Parameter(torch.ones([2]));
      const one = new optim.SGD([a, b], { lr: 0.1 });
      const two = new optim.SGD([{ params: [a] }, { params: [b] }], { lr: 0.1 });
      assert.throws(() => one.loadStateDict(two.stateDict()), /SGD\.loadStateDict: expected 1 parameter groups, got 2/);
      const three = new optim.SGD([a], { lr: 0.1 });
      assert.throws(() => three.loadStateDict(one.stateDict()), /SGD\.loadStateDict: group 0 has 1 parameters, the saved state 2/);
    }));
});

describe('scheduler state', () => {
  const schedulers: [string, (opt: torch.optim.Optimizer<{ lr: number }>) => torch.optim.LRScheduler][] = [
    ['MultiStepLR', (opt) => new optim.MultiStepLR(opt, [2, 5, 6], 0.3)],
    ['CosineWithWarmup', (opt) => new optim.CosineWithWarmup(opt, { warmupSteps: 3, totalSteps: 12, minLrRatio: 0.1 })],
  ];
  for (const [name, make] of schedulers) {
    test(`${name}: a resumed scheduler sets the same rates as an uninterrupted one`, () =>
      torch.tidy(() => {
        const p = () => [new nn.Parameter(torch.ones([1])), new nn.Parameter(torch.ones([1]))];
        const groups = (ps: Tensor[]) => [{ params: [ps[0]] }, { params: [ps[1]], options: { lr: 0.02 } }];
        const refOpt = new optim.SGD(groups(p()), { lr: 0.1 });
        const ref = make(refOpt);
        const rates: number[][] = [];
        for (let i = 0; i < 14; i++) {
          ref.step();
          rates.push(refOpt.paramGroups.map((g) => g.options.lr));
        }
        const opt = new optim.SGD(groups(p()), { lr: 0.1 });
        const sched = make(opt);
        for (let i = 0; i < 5; i++) sched.step();
        const saved = JSON.parse(JSON.stringify(sched.stateDict()));
        assert.equal(saved.lastStep, 5);
        // A new run builds its optimizer and scheduler as before, then loads.
        const opt2 = new optim.SGD(groups(p()), { lr: 0.1 });
        const sched2 = make(opt2);
        sched2.loadStateDict(saved);
        assert.deepEqual(
          opt2.paramGroups.map((g) => g.options.lr),
          rates[4],
        );
        for (let i = 5; i < 14; i++) {
          sched2.step();
          assert.deepEqual(
            opt2.paramGroups.map((g) => g.options.lr),
            rates[i],
            `step ${i + 1}`,
          );
          assert.deepEqual(sched2.getLastLr(), rates[i]);
        }
      }));
  }

  test('MultiStepLR multiplies by gamma at each milestone', () =>
    torch.tidy(() => {
      const opt = new optim.SGD([new nn.Parameter(torch.ones([1]))], { lr: 1 });
      const sched = new optim.MultiStepLR(opt, [2, 4], 0.5);
      const lrs = [opt.lr];
      for (let i = 0; i < 5; i++) {
        sched.step();
        lrs.push(opt.lr);
      }
      assert.deepEqual(lrs, [1, 1, 0.5, 0.5, 0.25, 0.25]);
    }));
});

describe('clipGradNorm_', () => {
  test('scales gradients to the maximum norm and returns the norm before clipping', () =>
    torch.tidy(() => {
      const a = new nn.Parameter(torch.zeros([2]));
      const b = new nn.Parameter(torch.zeros([1]));
      const c = new nn.Parameter(torch.zeros([1]));
      a.grad = torch.tensor([3, 0], { dtype: 'float32' });
      b.grad = torch.tensor([4], { dtype: 'float32' });
      const norm = optim.clipGradNorm_([a, b, c], 1);
      assert.equal(norm, 5);
      assert.ok(a.grad!.allclose(torch.tensor([0.6, 0], { dtype: 'float32' }), 1e-5, 1e-6));
      assert.ok(b.grad!.allclose(torch.tensor([0.8], { dtype: 'float32' }), 1e-5, 1e-6));
      assert.equal(optim.clipGradNorm_([c], 1), 0);
    }));
});
