import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromTypedArray, Generator, manualSeed, nn, optim, randn, setNumThreads, tensor, tidy, zeros, type Tensor } from '@pretext/torch';
import type { Batch } from '../../src/data/loader.js';
import { renderScene, syntheticStore } from '../../src/data/synthetic/index.js';
import type { SampleStore } from '../../src/data/store.js';
import { CifarResNet } from '../../src/models/resnet.js';
import {
  angularError,
  balancedContourLoss,
  balancedWeights,
  contourFScore,
  depthErrors,
  depthLoss,
  normalErrors,
  normalLoss,
  sceneSeeds,
  syntheticTask,
} from '../../src/tasks/synthetic.js';
import type { ImageAnswer, PretextBatch, TaskInstance } from '../../src/tasks/task.js';

setNumThreads(1);

const close = (actual: number, expected: number, tolerance = 1e-5) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} is not ${expected}`);

/** A 1 x 1 x 2 x 2 tensor from four values. */
const square = (values: number[]) => tensor([[values.slice(0, 2), values.slice(2, 4)]]).unsqueeze(0);

const batchOf = (images: Tensor, indices: number[]): Batch => ({
  images,
  labels: zeros([indices.length], 'int64'),
  indices: tensor(indices, { dtype: 'int64' }),
  index: 0,
});

/** Store images as the loader would give them (float, N x 3 x H x W; scaled, not normalized). */
const imagesOf = (store: SampleStore) =>
  fromTypedArray(store.images, [store.n, store.height, store.width, 3]).permute([0, 3, 1, 2]).float().div(255);

function makeInstance(store: SampleStore, taskOptions: Record<string, unknown> = {}): TaskInstance {
  manualSeed(0);
  return syntheticTask.create(new CifarResNet({ depth: 18, width: 4 }), syntheticTask.options.parse(taskOptions), {
    inChannels: 3,
    imageSize: store.height,
    store,
  });
}

/** One trainer step: each active phase with the other phases' parameters frozen, as train/trainer.ts runs them. */
function trainStep(
  instance: TaskInstance,
  prepared: PretextBatch,
  optimizers: Record<string, optim.Optimizer<{ lr: number }>>,
): Record<string, number> {
  const phases = instance.phases().filter((p) => p.active?.({ epoch: 0, step: 0 }) ?? true);
  const out: Record<string, number> = {};
  for (const phase of phases) {
    const own = new Set(phase.parameters);
    const frozen = phases.flatMap((p) => p.parameters).filter((p) => !own.has(p));
    for (const p of frozen) p.requiresGrad_(false);
    optimizers[phase.name].zeroGrad();
    const { loss, metrics } = instance.step(prepared, phase.name);
    loss.backward();
    optimizers[phase.name].step();
    for (const p of frozen) p.requiresGrad_(true);
    for (const [k, v] of Object.entries({ loss, ...metrics })) out[`${phase.name}/${k}`] = typeof v === 'number' ? v : v.item();
  }
  return out;
}

test('depth errors and losses match hand-computed values', () => {
  tidy(() => {
    const truth = square([2, 2, 2, 5]);
    const predicted = square([1, 2, 4, 100]);
    const mask = square([1, 1, 1, 0]);
    const { absRel, rmse } = depthErrors(predicted, truth, mask);
    close(absRel.item(), (0.5 + 0 + 1) / 3);
    close(rmse.item(), Math.sqrt((1 + 0 + 4) / 3));
    close(depthLoss(predicted.log(), truth, mask, 'log-l1').item(), (2 * Math.LN2) / 3);
    // Scale-invariant: per image mean(d^2) - 0.5 mean(d)^2, d = ln 2 and 0 on its two hit pixels.
    const twoHits = square([1, 1, 0, 0]);
    close(depthLoss(square([4, 2, 9, 9]).log(), square([2, 2, 1, 1]), twoHits, 'scale-invariant').item(), (3 / 8) * Math.LN2 ** 2);
    // A global scale s costs only (1 - 0.5) (ln s)^2, against (ln s)^2 for a per-pixel error of that size.
    close(depthLoss(truth.mul(3).log(), truth, mask, 'scale-invariant').item(), 0.5 * Math.log(3) ** 2);
  });
});

test('angular errors, the share within 11.25 degrees and the cosine loss match hand-computed values', () => {
  tidy(() => {
    const degrees = [0, 90, 10, 60, 170];
    const rad = degrees.map((d) => (d * Math.PI) / 180);
    const predicted = tensor([rad.map(Math.sin), rad.map(() => 0), rad.map(Math.cos)]).view([1, 3, 1, 5]);
    const truth = tensor([[0], [0], [1]])
      .view([1, 3, 1, 1])
      .expand([1, 3, 1, 5]);
    const mask = tensor([1, 1, 1, 1, 0]).float().view([1, 1, 1, 5]);
    assert.ok(angularError(predicted, truth).allclose(tensor(degrees).float().view([1, 1, 1, 5]), 0, 1e-3));
    const { meanAngle, pctWithin11 } = normalErrors(predicted, truth, mask);
    close(meanAngle.item(), 40, 1e-3);
    close(pctWithin11.item(), 50);
    const cosines = degrees.slice(0, 4).map((d) => Math.cos((d * Math.PI) / 180));
    close(normalLoss(predicted, truth, mask).item(), cosines.reduce((s, c) => s + 1 - c, 0) / 4);
  });
});

test('contour F-score and the class-balanced BCE weights match hand-computed values', () => {
  tidy(() => {
    const probabilities = tensor([0.9, 0.6, 0.2, 0.7, 0.1, 0.4]).view([1, 1, 2, 3]);
    const contours = tensor([1, 0, 1, 1, 0, 0]).float().view([1, 1, 2, 3]);
    // Predicted 1, 1, 0, 1, 0, 0: two hits, precision 2/3, recall 2/3.
    close(contourFScore(probabilities, contours).item(), 2 / 3);
    close(contourFScore(probabilities, contours, 0.65).item(), (2 * 1 * (2 / 3)) / (1 + 2 / 3));

    // One of four pixels is a contour in image 0, two of four in image 1.
    const truth = tensor([1, 0, 0, 0, 1, 1, 0, 0]).float().view([2, 1, 2, 2]);
    assert.deepEqual(balancedWeights(truth).flatten().toArray(), [0.75, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5]);
    const logits = [2, -1, 0.5, -3, 1, -2, 0, 4];
    const weights = [0.75, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5];
    const labels = truth.flatten().toArray();
    const expected =
      logits.reduce((sum, z, i) => {
        const p = 1 / (1 + Math.exp(-z));
        return sum - weights[i] * (labels[i] * Math.log(p) + (1 - labels[i]) * Math.log(1 - p));
      }, 0) / 8;
    close(balancedContourLoss(tensor(logits).view([2, 1, 2, 2]), truth).item(), expected);
  });
});

test("the geometry cache gives the renderer's exact depth, normals and contours for a batch's samples", () => {
  tidy(() => {
    const store = syntheticStore(5, 16, 11);
    const instance = makeInstance(store);
    const order = [3, 0, 3];
    const prepared = instance.prepare(batchOf(imagesOf(store).indexSelect(0, tensor(order, { dtype: 'int64' })), order), new Generator(0));
    assert.deepEqual(prepared.targets.shape, [3, 6, 16, 16]);
    order.forEach((index, row) => {
      const scene = renderScene(11 + index, { size: 16 });
      const geometry = prepared.targets.select(0, row);
      assert.ok(geometry.narrow(0, 0, 1).equal(fromTypedArray(scene.depth, [1, 16, 16])));
      assert.ok(geometry.narrow(0, 1, 3).equal(fromTypedArray(scene.normals, [16, 16, 3]).permute([2, 0, 1])));
      assert.ok(geometry.narrow(0, 4, 1).equal(fromTypedArray(scene.contours, [1, 16, 16]).float()));
      assert.ok(geometry.narrow(0, 5, 1).equal(fromTypedArray(scene.mask, [1, 16, 16]).float()));
    });
    assert.throws(
      () => sceneSeeds({ ...store, paths: ['synthetic/1', 'cat.jpg', 'synthetic/3', 'synthetic/4', 'synthetic/5'] }),
      /sample 1 \('cat.jpg'\)/,
    );
  });
});

test('training steps lower each loss, and the discriminator learns to tell the domains apart', () => {
  tidy(() => {
    const store = syntheticStore(8, 16, 1);
    const instance = makeInstance(store, { domainWeight: 0.1 });
    const real = randn([8, 3, 16, 16], new Generator(5)).mul(0.3).add(0.5);
    const prepared = instance.prepare(batchOf(imagesOf(store), [0, 1, 2, 3, 4, 5, 6, 7]), new Generator(0), {
      real: batchOf(real, [0, 1, 2, 3, 4, 5, 6, 7]),
    });
    const optimizers = Object.fromEntries(instance.phases().map((p) => [p.name, new optim.Adam(p.parameters, { lr: 3e-3 })]));
    const history = Array.from({ length: 40 }, () => tidy(() => trainStep(instance, prepared, optimizers)));
    const [first, last] = [history[0], history[history.length - 1]];
    for (const key of ['main/depthLoss', 'main/normalLoss', 'main/contourLoss', 'discriminator/loss']) {
      assert.ok(last[key] < 0.8 * first[key], `${key}: ${first[key]} -> ${last[key]}`);
    }
    assert.ok(last['main/absRel'] < first['main/absRel'] && last['main/meanAngle'] < first['main/meanAngle']);
    assert.ok('main/adversarial' in last && last['discriminator/acc'] >= 0 && last['discriminator/acc'] <= 1);
  });
});

test('the discriminator sees synthetic and real features, and its phase writes only its own parameters', () => {
  tidy(() => {
    const store = syntheticStore(4, 16, 21);
    const instance = makeInstance(store);
    const { backbone, decoders, discriminator } = instance.modules as Record<string, nn.Module>;
    const seen: number[] = [];
    const forward = discriminator.forward.bind(discriminator);
    discriminator.forward = (x: Tensor) => {
      seen.push(x.shape[0]);
      return forward(x);
    };
    const prepareWith = (real: Tensor) =>
      instance.prepare(batchOf(imagesOf(store), [0, 1, 2, 3]), new Generator(0), { real: batchOf(real, [0, 1, 2]) });
    const real = randn([3, 3, 16, 16], new Generator(1));
    const prepared = prepareWith(real);
    const before = [backbone, decoders, discriminator].map((m) => m.parameters().map((p) => p.clone()));
    const phase = instance.phases().find((p) => p.name === 'discriminator')!;
    const optimizer = new optim.SGD(phase.parameters, { lr: 0.1, momentum: 0 });
    const { loss } = instance.step(prepared, 'discriminator');
    assert.deepEqual(seen, [4 + 3]);
    loss.backward();
    assert.ok([...backbone.parameters(), ...decoders.parameters()].every((p) => p.grad === undefined));
    optimizer.step();
    const after = [backbone, decoders, discriminator].map((m) => m.parameters());
    assert.ok(after[0].every((p, i) => p.equal(before[0][i])) && after[1].every((p, i) => p.equal(before[1][i])));
    assert.ok(after[2].some((p, i) => !p.equal(before[2][i])));
    // The real half matters: other real images, another loss.
    const other = instance.step(prepareWith(real.flip([3]).add(1)), 'discriminator').loss.item();
    assert.notEqual(other, instance.step(prepareWith(real), 'discriminator').loss.item());
  });
});

test('with domainWeight 0 the discriminator phase is inactive and the main loss has no adversarial term', () => {
  tidy(() => {
    const store = syntheticStore(4, 16, 31);
    const progress = { epoch: 0, step: 0 };
    const off = makeInstance(store, { domainWeight: 0 });
    assert.equal(off.phases().find((p) => p.name === 'discriminator')!.active!(progress), false);
    const prepared = off.prepare(batchOf(imagesOf(store), [0, 1, 2, 3]), new Generator(0));
    const { loss, metrics } = off.step(prepared, 'main');
    assert.ok(!('adversarial' in metrics));
    close(
      loss.item(),
      (metrics.depthLoss as Tensor)
        .add(metrics.normalLoss as Tensor)
        .add(metrics.contourLoss as Tensor)
        .item(),
    );
    const on = makeInstance(store, { domainWeight: 0.5 });
    assert.equal(on.phases().find((p) => p.name === 'discriminator')!.active!(progress), true);
    const withTerm = on.step(on.prepare(batchOf(imagesOf(store), [0, 1, 2, 3]), new Generator(0)), 'main');
    const m = withTerm.metrics as Record<string, Tensor>;
    close(withTerm.loss.item(), m.depthLoss.add(m.normalLoss).add(m.contourLoss).add(m.adversarial.mul(0.5)).item());
  });
});

test('the picture shows input, predicted and true depth, normals and contours; real rows only predictions', () => {
  tidy(() => {
    const store = syntheticStore(3, 16, 41);
    const instance = makeInstance(store);
    const prepared = instance.prepare(batchOf(imagesOf(store), [0, 1, 2]), new Generator(0), {
      real: batchOf(randn([2, 3, 16, 16], new Generator(2)), [0, 1]),
    });
    const display = (x: Tensor) => x.clamp(0, 1);
    const question = syntheticTask.picture(prepared, undefined, display);
    assert.equal(question.columns, 4);
    assert.deepEqual(question.panels.shape, [3 * 4, 3, 16, 16]);
    const answers = instance.answers(prepared) as ImageAnswer[];
    assert.equal(answers.length, 5);
    assert.ok(answers[0].score?.name === 'absRel' && answers[3].score === undefined);
    const picture = syntheticTask.picture(prepared, answers, display);
    assert.equal(picture.columns, 7);
    assert.deepEqual(picture.panels.shape, [5 * 7, 3, 16, 16]);
    assert.equal(picture.captions.length, 5 * 7);
    assert.ok(picture.panels.min().item() >= 0 && picture.panels.max().item() <= 1);
    // Truth columns: the normals panel of row 0 is (n + 1) / 2; real rows have blank truth panels.
    const normals = prepared.targets.narrow(1, 1, 3).select(0, 0);
    assert.ok(picture.panels.select(0, 4).allclose(normals.add(1).mul(0.5), 0, 1e-6));
    assert.equal(
      picture.panels
        .select(0, 3 * 7 + 2)
        .abs()
        .max()
        .item(),
      0,
    );
  });
});
