import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Generator, nn, randn, setNumThreads, tensor, testing, tidy, zeros, type Tensor } from '@pretext/torch';
import { imageBatch } from '../../src/data/loader.js';
import { SmallAlexNet } from '../../src/models/alexnet.js';
import {
  BLOB_COVERAGE,
  blobMask,
  blurFill,
  centerCrop,
  centerMask,
  ChannelwiseLinear,
  Discriminator,
  channelwiseLinear,
  inpaintingTask,
  meanFill,
  overlapL2,
  overlapWeights,
  rectangleMask,
} from '../../src/tasks/inpainting.js';
import type { ImageAnswer, TaskInstance } from '../../src/tasks/task.js';
import { stepOnePhase, trainPhases } from './phases.js';

// One libtorch thread: OpenMP's two threads slow to a crawl when other processes share the cores.
setNumThreads(1);

const SIZE = 16;

const batchOf = imageBatch;

/** Smooth random images: bilinear upsampling of 4 x 4 noise. */
const smoothImages = (n: number, size: number, seed: number) =>
  nn.functional.interpolate(randn([n, 3, 4, 4], new Generator(seed)), { size, mode: 'bilinear' });

/** A small inpainting model on 16 x 16 RGB images. */
function smallTask(options: Record<string, unknown> = {}): TaskInstance {
  const o = inpaintingTask.options.parse({ decoderWidth: 16, discriminatorWidth: 8, ...options });
  const inChannels = o.maskInput === 'fill' ? 3 : 4;
  return inpaintingTask.create(new SmallAlexNet({ width: 8, inChannels }), o, { inChannels: 3, imageSize: SIZE });
}

const coverage = (mask: Tensor) => mask.flatten(1).mean([1]).toArray();

test('the center mask is the central square, exactly a quarter of the area, the same for every image', () => {
  tidy(() => {
    const mask = centerMask(3, 8);
    assert.deepEqual(mask.shape, [3, 1, 8, 8]);
    assert.deepEqual(coverage(mask), [0.25, 0.25, 0.25]);
    const inside = (i: number) => i >= 2 && i < 6;
    const expected = Array.from({ length: 64 }, (_, k) => (inside(Math.floor(k / 8)) && inside(k % 8) ? 1 : 0));
    for (let i = 0; i < 3; i++) assert.deepEqual(mask.select(0, i).flatten().toArray(), expected);
    assert.throws(() => centerMask(1, 7), /must be even/);
    // Sides whose quarter is not whole: still a quarter, and centerCrop cuts out exactly the square.
    const odd = centerMask(2, 30);
    assert.deepEqual(coverage(odd), [0.25, 0.25]);
    assert.ok(centerCrop(odd).eq(1).all().item() && centerCrop(odd).sum().item() === odd.sum().item());
  });
});

test('rectangle masks cover 1/64 to 1/4 of each image, vary across images and repeat with the seed', () => {
  tidy(() => {
    const size = 32;
    const mask = rectangleMask(200, size, new Generator(1));
    assert.ok(mask.eq(0).logicalOr(mask.eq(1)).all().item());
    const fractions = coverage(mask);
    // At least one rectangle of the smallest side (size/8), at most RECTANGLES of size/4 squared.
    for (const f of fractions) assert.ok(f >= 1 / 64 && f <= 1 / 4, `coverage ${f}`);
    const mean = fractions.reduce((a, b) => a + b) / fractions.length;
    assert.ok(mean > 0.06 && mean < 0.2, `mean coverage ${mean}`);
    assert.ok(new Set(fractions).size > 20);
    assert.ok(rectangleMask(200, size, new Generator(1)).equal(mask));
    assert.ok(!rectangleMask(200, size, new Generator(2)).equal(mask));
  });
});

test('blob masks cover BLOB_COVERAGE of each image in a few smooth blobs and repeat with the seed', () => {
  tidy(() => {
    const size = 32;
    const mask = blobMask(200, size, new Generator(3));
    const fractions = coverage(mask);
    const [lo, hi] = BLOB_COVERAGE;
    for (const f of fractions) assert.ok(f >= lo - 1 / size ** 2 && f <= hi + 1 / size ** 2, `coverage ${f}`);
    assert.ok(Math.max(...fractions) - Math.min(...fractions) > 0.05);
    // Smooth shapes: few 0/1 transitions between neighbours per covered pixel (scattered pixels at
    // this coverage would give about 3).
    const steps = (dim: number) =>
      mask
        .narrow(dim, 1, size - 1)
        .sub(mask.narrow(dim, 0, size - 1))
        .abs()
        .sum()
        .item();
    const transitions = steps(2) + steps(3);
    const covered = mask.sum().item();
    assert.ok(transitions / covered < 0.6, `transitions per covered pixel ${transitions / covered}`);
    assert.ok(blobMask(200, size, new Generator(3)).equal(mask));
    assert.ok(!blobMask(200, size, new Generator(4)).equal(mask));
  });
});

test('overlap weights: 1 in the hole, the band weight on context within the overlap, clipped at the border', () => {
  tidy(() => {
    // A 2 x 2 hole in the middle of a 6 x 6 image and a 1-px hole in its corner, overlap 1.
    const hole = [
      [0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0],
      [0, 0, 1, 1, 0, 0],
      [0, 0, 1, 1, 0, 0],
      [0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 1],
    ];
    const expected = [
      [0, 0, 0, 0, 0, 0],
      [0, 10, 10, 10, 10, 0],
      [0, 10, 1, 1, 10, 0],
      [0, 10, 1, 1, 10, 0],
      [0, 10, 10, 10, 10, 10],
      [0, 0, 0, 0, 10, 1],
    ];
    const mask = tensor(hole, { dtype: 'float32' }).view([1, 1, 6, 6]);
    assert.deepEqual(overlapWeights(mask, 1, 10).view([6, 6]).toArray(), expected.flat());
    assert.ok(overlapWeights(mask, 0, 10).equal(mask));
    // A difference of 1 everywhere in 2 channels: (5 hole px x 1 + 14 band px x 10) / 19 covered px.
    const prediction = zeros([1, 2, 6, 6]);
    const target = prediction.add(1);
    assert.ok(Math.abs(overlapL2(prediction, target, overlapWeights(mask, 1, 10)).item() - (5 + 140) / 19) < 1e-6);
  });
});

test('the channel-wise FC layer equals a dense layer per channel over the positions', () => {
  tidy(() => {
    const [n, c, h, w] = [2, 3, 2, 3];
    const layer = new ChannelwiseLinear(c, h * w);
    const x = randn([n, c, h, w], new Generator(5));
    const out = layer.forward(x).toArray();
    const [xs, ws, bs] = [x.toArray(), layer.weight.toArray(), layer.bias.toArray()];
    const p = h * w;
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < c; k++) {
        for (let q = 0; q < p; q++) {
          let sum = bs[k * p + q];
          for (let j = 0; j < p; j++) sum += xs[(i * c + k) * p + j] * ws[(k * p + j) * p + q];
          assert.ok(Math.abs(out[(i * c + k) * p + q] - sum) < 1e-5, `output [${i}, ${k}, ${q}]`);
        }
      }
    }
  });
});

test('the channel-wise FC layer: gradients match finite differences', () => {
  tidy(() => {
    const g = new Generator(6);
    const x = randn([2, 3, 2, 2], g, 'float64').requiresGrad_();
    const weight = randn([3, 4, 4], g, 'float64').requiresGrad_();
    const bias = randn([3, 1, 4], g, 'float64').requiresGrad_();
    const result = testing.assertGradcheck(channelwiseLinear, [x, weight, bias]);
    assert.equal(result.checked, 24 + 48 + 12);
  });
});

test('mean fill zeroes the hole (the dataset mean) and blur fill diffuses the context into it', () => {
  tidy(() => {
    const images = randn([2, 3, 7, 7], new Generator(7));
    const mask = zeros([2, 1, 7, 7]);
    mask.narrow(2, 1, 5).narrow(3, 1, 5).fill_(1); // a 5 x 5 hole
    const context = mask.rsub(1);
    assert.ok(meanFill(images, mask).mul(mask).eq(0).all().item());
    assert.ok(meanFill(images, mask).equal(images.mul(context)));
    // One pass: the hole's outer ring is the mean of its context neighbours; the rest stays at the mean.
    const once = blurFill(images, mask, 1);
    assert.ok(once.mul(context).equal(images.mul(context)));
    const corner = images.narrow(2, 0, 3).narrow(3, 0, 3); // neighbours of pixel (1, 1)
    const contextOfCorner = corner
      .sum([2, 3])
      .sub(corner.narrow(2, 1, 2).narrow(3, 1, 2).sum([2, 3]))
      .div(5);
    assert.ok(once.select(2, 1).select(2, 1).allclose(contextOfCorner, 1e-5, 1e-6));
    assert.ok(once.narrow(2, 2, 3).narrow(3, 2, 3).eq(0).all().item());
    // Enough passes fill a constant image's hole with the constant.
    const constant = zeros([1, 3, 7, 7]).add(0.7);
    assert.ok(blurFill(constant, mask.narrow(0, 0, 1), 3).allclose(constant, 1e-5, 1e-6));
    // On smooth images the blur fill beats the mean fill.
    const smooth = smoothImages(8, SIZE, 8);
    const center = centerMask(8, SIZE);
    const error = (filled: Tensor) => filled.sub(smooth).square().mean().item();
    assert.ok(error(blurFill(smooth, center, SIZE / 2)) < 0.5 * error(meanFill(smooth, center)));
  });
});

test('inputs carry the mask channel (or only the fill); encoderInput gives unmasked images in the same layout', () => {
  tidy(() => {
    const images = smoothImages(4, SIZE, 9);
    const channel = smallTask();
    const prepared = channel.prepare(batchOf(images), new Generator(0));
    const mask = prepared.extra!.mask;
    assert.deepEqual(prepared.inputs.shape, [4, 4, SIZE, SIZE]);
    assert.ok(prepared.inputs.narrow(1, 0, 3).equal(meanFill(images, mask)));
    assert.ok(prepared.inputs.narrow(1, 3, 1).equal(mask));
    const encoded = channel.encoderInput!(images);
    assert.ok(encoded.narrow(1, 0, 3).equal(images) && encoded.narrow(1, 3, 1).eq(0).all().item());
    const fill = smallTask({ maskInput: 'fill', mask: 'blobs' });
    assert.deepEqual(fill.prepare(batchOf(images), new Generator(0)).inputs.shape, [4, 3, SIZE, SIZE]);
    assert.ok(fill.encoderInput!(images).equal(images));
    assert.equal(inpaintingTask.inputChannels!(3, inpaintingTask.options.parse({})), 4);
    assert.equal(inpaintingTask.inputChannels!(3, inpaintingTask.options.parse({ maskInput: 'fill' })), 3);
    assert.throws(
      () => inpaintingTask.create(new SmallAlexNet({ width: 8 }), inpaintingTask.options.parse({}), { inChannels: 3, imageSize: SIZE }),
      /must take 4 input channels \(data 3\), it takes 3/,
    );
  });
});

test('PSNR and L1 are measured over the hole in display units', () => {
  tidy(() => {
    const task = smallTask() as TaskInstance & { quality(c: Tensor, t: Tensor, m: Tensor): Record<string, Tensor> };
    task.loadState!({ json: { normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } } });
    const targets = zeros([2, 3, SIZE, SIZE]);
    const mask = centerMask(2, SIZE);
    // 0.2 normalized = 0.1 display units off in the hole: MSE 0.01, 20 dB; L1 0.1.
    const metrics = task.quality(targets.add(mask.mul(0.2)), targets, mask);
    assert.ok(Math.abs(metrics.psnr.item() - 20) < 1e-4);
    assert.ok(Math.abs(metrics.l1.item() - 0.1) < 1e-6);
    // The targets are the dataset mean here, so the mean fill is perfect (PSNR clamped at 100 dB).
    assert.ok(metrics.meanFillPsnr.item() > 99);
  });
});

test('a few generator steps on a tiny batch lower the masked L2 and raise the hole PSNR', () => {
  const task = smallTask({ adversarialWeight: 0 });
  assert.equal(task.phases()[1].active!({ epoch: 0, step: 0 }), false);
  const log = tidy(() => trainPhases(task, task.prepare(batchOf(smoothImages(8, SIZE, 11)), new Generator(10)), 25));
  const [first, last] = [log[0], log.at(-1)!];
  assert.ok(last['generator/l2'] < 0.5 * first['generator/l2'], `l2 ${first['generator/l2']} -> ${last['generator/l2']}`);
  assert.ok(last['generator/psnr'] > first['generator/psnr']);
  assert.ok(!('discriminator/acc' in last));
});

test('each phase updates only its own parameters; the discriminator loss leaves no gradient in the generator', () => {
  tidy(() => {
    const task = smallTask({ mask: 'rectangles' });
    const [generator, discriminator] = task.phases().map((p) => p.parameters);
    const snapshot = (params: nn.Parameter[]) => params.map((p) => p.clone());
    const unchanged = (params: nn.Parameter[], before: Tensor[]) => params.every((p, i) => p.equal(before[i]));
    const g0 = snapshot(generator);
    const d0 = snapshot(discriminator);
    const log = trainPhases(task, task.prepare(batchOf(smoothImages(4, SIZE, 12)), new Generator(10)), 1);
    assert.ok(!unchanged(generator, g0) && !unchanged(discriminator, d0));
    for (const key of ['generator/l2', 'generator/adversarial', 'generator/psnr', 'generator/blurFillPsnr', 'discriminator/acc']) {
      assert.ok(Number.isFinite(log[0][key]), key);
    }
    // One phase at a time, nothing frozen: the discriminator's loss reaches no generator weight,
    // and each optimizer moves only its own phase.
    const prepared = task.prepare(batchOf(smoothImages(4, SIZE, 13)), new Generator(1));
    const afterD = stepOnePhase(task, prepared, 'discriminator');
    assert.deepEqual(afterD, { generator: { changed: false, gradient: false }, discriminator: { changed: true, gradient: true } });
    const afterG = stepOnePhase(task, prepared, 'generator');
    assert.equal(afterG.generator.changed, true);
    assert.equal(afterG.discriminator.changed, false);
  });
});

test('the discriminator gives one logit per image for whole images and odd-sided center crops', () => {
  tidy(() => {
    for (const size of [32, 15, 4]) {
      const d = new Discriminator(3, size, 4);
      assert.deepEqual(d.forward(randn([5, 3, size, size])).shape, [5]);
    }
  });
});

test('the discriminator is a Backbone: a block per stride-2 stage, the logit conv over the last one', () => {
  tidy(() => {
    const d = new Discriminator(3, 32, 4);
    assert.deepEqual(d.blockNames, ['block1', 'block2', 'block3']);
    assert.deepEqual(d.blockChannels, [4, 8, 16]);
    const x = randn([2, 3, 32, 32]);
    const features = d.features(x, d.blockNames);
    assert.deepEqual(
      [...features.values()].map((f) => f.shape),
      [
        [2, 4, 16, 16],
        [2, 8, 8, 8],
        [2, 16, 4, 4],
      ],
    );
    assert.ok(d.forward(x).equal(d.logit.forward(features.get('block3')!).view([-1])));
    assert.deepEqual(new Discriminator(3, 4, 4).blockNames, []);
  });
});

test('the discriminator is a probe module that sees what it judged: the center crop, or the whole image', () => {
  tidy(() => {
    const images = smoothImages(2, SIZE, 15);
    const center = smallTask();
    const probe = center.probes!().discriminator;
    assert.equal(probe.module, center.modules.discriminator);
    assert.ok(probe.input!(images).equal(centerCrop(images)));
    assert.deepEqual(probe.module.forwardTo(probe.input!(images), 'block1').shape, [2, 8, SIZE / 4, SIZE / 4]);
    assert.ok(smallTask({ mask: 'blobs' }).probes!().discriminator.input!(images).equal(images));
  });
});

test('answers are the filled images with their PSNR; the picture shows masked | filled | truth rows', () => {
  tidy(() => {
    const task = smallTask({ mask: 'blobs' });
    const images = smoothImages(3, SIZE, 14);
    const prepared = task.prepare(batchOf(images), new Generator(2));
    const answers = task.answers(prepared) as ImageAnswer[];
    assert.equal(answers.length, 3);
    const mask = prepared.extra!.mask;
    for (const [i, a] of answers.entries()) {
      assert.deepEqual(a.image.shape, [3, SIZE, SIZE]);
      assert.equal(a.score?.name, 'PSNR');
      // Outside the hole the answer is the image itself.
      const context = mask.select(0, i).rsub(1);
      assert.ok(a.image.mul(context).equal(images.select(0, i).mul(context)));
    }
    const identity = (x: Tensor) => x;
    const picture = inpaintingTask.picture(prepared, answers, identity);
    assert.equal(picture.columns, 3);
    assert.deepEqual(picture.panels.shape, [9, 3, SIZE, SIZE]);
    assert.match(picture.captions[1], /^filled, -?\d+\.\d dB$/);
    assert.deepEqual([picture.captions[0], picture.captions[2]], ['masked', 'truth']);
    assert.ok(picture.panels.select(0, 4).equal(answers[1].image));
    assert.ok(picture.panels.select(0, 8).equal(images.select(0, 2)));
    assert.ok(picture.panels.select(0, 6).equal(meanFill(images, mask).select(0, 2)));
    const question = inpaintingTask.picture(prepared, undefined, identity);
    assert.equal(question.captions[1], 'blur fill');
  });
});
