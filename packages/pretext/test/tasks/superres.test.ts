import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  arange,
  Generator,
  manualSeed,
  nn,
  optim,
  rand,
  randn,
  setNumThreads,
  tensor,
  testing,
  tidy,
  zeros,
  type Tensor,
} from '@pretext/torch';
import { imageBatch, normalizeImages } from '../../src/data/loader.js';
import { createBackbone } from '../../src/models/index.js';
import { loadRunBackbone } from '../../src/models/run-backbone.js';
import { prelu, PReLU, SrganDiscriminator, SrResNet, SubPixelUpsampler } from '../../src/models/srgan.js';
import { psnr, ssim } from '../../src/tasks/image-metrics.js';
import { bicubicDownsample, superresTask } from '../../src/tasks/superres.js';
import type { EpochContext, ImageAnswer, TaskInstance } from '../../src/tasks/task.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { trainPhases } from './phases.js';

// One libtorch thread: OpenMP's two threads slow to a crawl when other processes share the cores.
setNumThreads(1);

const SIZE = 16;

const batchOf = imageBatch;

/** Smooth random images in [0, 1]: bilinearly upsampled 4 x 4 noise. */
const smoothImages = (n: number, size: number, seed: number): Tensor =>
  nn.functional.interpolate(rand([n, 3, 4, 4], new Generator(seed)), { size, mode: 'bilinear' });

/** A task on a small generator (2 residual blocks, width 8) and discriminator. */
function smallTask(options: Record<string, unknown> = {}, size = SIZE): TaskInstance {
  manualSeed(0);
  const o = superresTask.options.parse({ discriminatorWidth: 4, warmupEpochs: 0, ...options });
  return superresTask.create(new SrResNet({ blocks: 2, groups: 2, width: 8 }), o, { inChannels: 3, imageSize: size });
}

/** Starts `epoch` on the task as the trainer would, collecting its log lines. */
function startEpoch(task: TaskInstance, epoch: number): string[] {
  const lines: string[] = [];
  task.onEpochStart!({ epoch, log: (line: string) => lines.push(line) } as unknown as EpochContext);
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Reference implementations in plain loops, independent of the batched tensor code.

/** Flat row-major values of an H x W plane. */
const plane = (t: Tensor): number[] => Array.from(t.contiguous().toTypedArray() as Float32Array);

/** SSIM of two H x W planes with a k x k window `weights` (row-major, summing to 1), valid positions averaged. */
function referenceSsim(x: number[], y: number[], h: number, w: number, weights: number[], k: number): number {
  const [c1, c2] = [0.01 ** 2, 0.03 ** 2];
  let total = 0;
  for (let top = 0; top + k <= h; top++) {
    for (let left = 0; left + k <= w; left++) {
      let [mx, my, xx, yy, xy] = [0, 0, 0, 0, 0];
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          const [a, b, v] = [x[(top + i) * w + left + j], y[(top + i) * w + left + j], weights[i * k + j]];
          mx += v * a;
          my += v * b;
          xx += v * a * a;
          yy += v * b * b;
          xy += v * a * b;
        }
      }
      const [vx, vy, cov] = [xx - mx * mx, yy - my * my, xy - mx * my];
      total += ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
    }
  }
  return total / ((h - k + 1) * (w - k + 1));
}

/** PIL's antialiased bicubic resampling of one row (Pillow's Resample.c: support 2 x scale, a = -0.5, weights renormalized). */
function referenceDownsampleRow(row: number[], factor: number): number[] {
  const cubic = (x: number) => {
    const t = Math.abs(x);
    return t < 1 ? 1.5 * t ** 3 - 2.5 * t ** 2 + 1 : t < 2 ? -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2 : 0;
  };
  const out: number[] = [];
  for (let i = 0; i < row.length / factor; i++) {
    const center = (i + 0.5) * factor;
    const lo = Math.max(0, Math.trunc(center - 2 * factor + 0.5));
    const hi = Math.min(row.length, Math.trunc(center + 2 * factor + 0.5));
    let [sum, norm] = [0, 0];
    for (let k = lo; k < hi; k++) {
      const weight = cubic((k - center + 0.5) / factor);
      sum += weight * row[k];
      norm += weight;
    }
    out.push(sum / norm);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Metrics

test('PSNR: identical images hit the 100 dB cap, a constant offset d gives 20 log10(1 / d)', () => {
  tidy(() => {
    const images = rand([3, 1, 8, 8], new Generator(1)).mul(0.8);
    assert.ok(Math.abs(psnr(images, images).item() - 100) < 1e-3);
    for (const d of [0.1, 0.03]) {
      assert.ok(Math.abs(psnr(images.add(d), images).item() - 20 * Math.log10(1 / d)) < 1e-3, `offset ${d}`);
    }
    // dataRange 255: the same relative error, the same dB.
    assert.ok(Math.abs(psnr(images.add(0.1).mul(255), images.mul(255), 255).item() - 20) < 1e-3);
  });
});

test('SSIM is 1 for identical images and matches plain loops for a uniform and the 11 x 11 Gaussian window', () => {
  tidy(() => {
    const g = new Generator(2);
    const x = rand([2, 1, 13, 13], g);
    const y = x.mul(0.7).add(rand([2, 1, 13, 13], g).mul(0.3));
    assert.ok(Math.abs(ssim(x, x).item() - 1) < 1e-6);
    // Uniform 5 x 5 window over a 5 x 5 image: one position, the global means, variances and covariance.
    const small = [x, y].map((t) => t.narrow(2, 0, 5).narrow(3, 0, 5));
    const uniform = Array<number>(25).fill(1 / 25);
    const ours = ssim(small[0].narrow(0, 0, 1), small[1].narrow(0, 0, 1), { windowSize: 5, sigma: 'uniform' }).item();
    const expected = referenceSsim(plane(small[0].select(0, 0).select(0, 0)), plane(small[1].select(0, 0).select(0, 0)), 5, 5, uniform, 5);
    assert.ok(Math.abs(ours - expected) < 1e-5, `uniform: ${ours} vs ${expected}`);
    // The standard window on 13 x 13 images: 3 x 3 valid positions, per sample.
    const gauss = Array.from({ length: 11 }, (_, i) => Math.exp(-((i - 5) ** 2) / (2 * 1.5 ** 2)));
    const total = gauss.reduce((a, b) => a + b) ** 2;
    const window = gauss.flatMap((a) => gauss.map((b) => (a * b) / total));
    const perSample = [0, 1].map((i) =>
      referenceSsim(plane(x.select(0, i).select(0, 0)), plane(y.select(0, i).select(0, 0)), 13, 13, window, 11),
    );
    const batched = ssim(x, y).item();
    assert.ok(Math.abs(batched - (perSample[0] + perSample[1]) / 2) < 1e-5, `gaussian: ${batched} vs ${perSample}`);
    assert.ok(batched < 0.99);
    assert.throws(() => ssim(small[0], small[1]), /smaller than the 11 px window/);
  });
});

test('PReLU: slopes per channel, equal to LeakyReLU at a shared slope; gradients match finite differences', () => {
  tidy(() => {
    const x = randn([2, 3, 4, 4], new Generator(3));
    const layer = new PReLU(3, 0.2);
    assert.ok(layer.forward(x).sub(nn.functional.leakyRelu(x, 0.2)).abs().max().item() < 1e-7);
    const xs = randn([2, 3, 3], new Generator(4), 'float64');
    // Keep every input away from the kink at 0.
    const away = xs.add(xs.sign().mul(0.1)).requiresGrad_();
    const slopes = tensor([0.1, -0.3, 0.7], { dtype: 'float64' }).requiresGrad_();
    const result = testing.assertGradcheck(prelu, [away, slopes]);
    assert.equal(result.checked, 18 + 3);
  });
});

// ---------------------------------------------------------------------------------------------
// Downsampling and upsampling

test('bicubicDownsample equals PIL-style antialiased bicubic computed row by row in plain loops', () => {
  tidy(() => {
    for (const factor of [2, 3, 4]) {
      const side = 12;
      const image = rand([1, 1, side, side], new Generator(factor));
      const rows = Array.from({ length: side }, (_, r) => plane(image.view([side, side]).select(0, r)));
      const horizontal = rows.map((row) => referenceDownsampleRow(row, factor));
      const columns = Array.from({ length: side / factor }, (_, c) =>
        referenceDownsampleRow(
          horizontal.map((row) => row[c]),
          factor,
        ),
      );
      const ours = plane(bicubicDownsample(image, factor).select(0, 0));
      columns.forEach((column, c) =>
        column.forEach((v, r) => assert.ok(Math.abs(ours[r * (side / factor) + c] - v) < 1e-5, `factor ${factor} at ${r},${c}`)),
      );
    }
  });
});

test('the downsampler low-passes: a 1 px checkerboard becomes flat grey, stripes keep far less contrast than plain bicubic', () => {
  tidy(() => {
    const steps = arange(0, 32, 1, 'int64');
    const checkerboard = steps
      .view([32, 1])
      .add(steps.view([1, 32]))
      .remainder(2)
      .float()
      .view([1, 1, 32, 32]);
    // Strided sampling picks one colour of the board; the antialiased kernel sees both.
    assert.equal(checkerboard.narrow(2, 0, 1).narrow(3, 0, 1).item(), 0);
    for (const factor of [2, 4]) {
      const small = bicubicDownsample(checkerboard, factor);
      assert.deepEqual(small.shape, [1, 1, 32 / factor, 32 / factor]);
      assert.ok(small.sub(0.5).abs().max().item() < 0.02, `factor ${factor}: ${small.sub(0.5).abs().max().item()}`);
    }
    // Vertical stripes of period 3 (above the half-size Nyquist limit) alias under plain bicubic.
    const stripes = steps.remainder(3).eq(0).float().view([1, 1, 1, 32]).expand([1, 1, 30, 32]).narrow(3, 0, 30).contiguous();
    // Away from the border columns (where the kernel is renormalized): contrast 0.16 against plain bicubic's 0.78.
    const contrast = (t: Tensor) => t.narrow(3, 2, 11).max().item() - t.narrow(3, 2, 11).min().item();
    const antialiased = contrast(bicubicDownsample(stripes, 2));
    const plain = contrast(nn.functional.interpolate(stripes, { size: [15, 15], mode: 'bicubic' }));
    assert.ok(antialiased < 0.3 * plain, `antialiased ${antialiased} vs plain ${plain}`);
  });
});

test('pixelShuffle upsampling: channel blocks become sub-pixel positions; x2 and x4 tasks restore the image size', () => {
  tidy(() => {
    // Channel i * 2 + j of a 4-channel map lands at offset (i, j) of each 2 x 2 output cell.
    const input = arange(0, 4, 1, 'float32').view([1, 4, 1, 1]).expand([1, 4, 2, 3]).contiguous();
    const shuffled = nn.functional.pixelShuffle(input, 2);
    assert.deepEqual(shuffled.shape, [1, 1, 4, 6]);
    assert.deepEqual(plane(shuffled.select(0, 0)).slice(0, 6), [0, 1, 0, 1, 0, 1]);
    assert.deepEqual(plane(shuffled.select(0, 0)).slice(6, 12), [2, 3, 2, 3, 2, 3]);
    assert.deepEqual(new SubPixelUpsampler(8, 3, 4, 8).forward(zeros([2, 8, 5, 5])).shape, [2, 3, 20, 20]);
    for (const scale of [2, 4]) {
      const task = smallTask({ scale }, 32);
      const prepared = task.prepare(batchOf(smoothImages(2, 32, 5)), new Generator(0));
      assert.deepEqual(prepared.inputs.shape, [2, 3, 32 / scale, 32 / scale]);
      assert.deepEqual(prepared.extra!.bicubic.shape, [2, 3, 32, 32]);
      assert.deepEqual((task.answers(prepared)[0] as ImageAnswer).image.shape, [3, 32, 32]);
      assert.deepEqual(task.encoderInput!(prepared.targets).shape, [2, 3, 32 / scale, 32 / scale]);
    }
    // Any backbone fits: a downsampling trunk gets as many sub-pixel doublings as it needs.
    const resnet = superresTask.create(createBackbone('resnet18-small'), superresTask.options.parse({ discriminatorWidth: 4 }), {
      inChannels: 3,
      imageSize: 32,
    });
    assert.deepEqual(
      (resnet.answers(resnet.prepare(batchOf(smoothImages(1, 32, 6)), new Generator(0)))[0] as ImageAnswer).image.shape,
      [3, 32, 32],
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Networks

test('SRResNet blocks are probe-able and the global skip adds the stem to the fused trunk; the discriminator is a Backbone', () => {
  tidy(() => {
    manualSeed(1);
    const trunk = new SrResNet({ blocks: 4, groups: 2, width: 8 });
    assert.deepEqual(trunk.blockNames, ['stem', 'res1', 'res2', 'fuse']);
    const x = randn([2, 3, 6, 6]);
    const features = trunk.features(x, trunk.blockNames);
    for (const f of features.values()) assert.deepEqual(f.shape, [2, 8, 6, 6]);
    assert.ok(trunk.forward(x).equal(features.get('fuse')!));
    // With every conv after the stem at zero, residual blocks are identities and the fuse conv adds nothing: fuse = stem.
    for (const [name, p] of trunk.namedParameters()) if (!name.startsWith('blocks.0') && p.ndim === 4) p.detach().zero_();
    const zeroed = trunk.features(x, ['stem', 'fuse']);
    assert.ok(zeroed.get('fuse')!.sub(zeroed.get('stem')!).abs().max().item() < 1e-6);
    const discriminator = new SrganDiscriminator({ width: 4 });
    assert.deepEqual(discriminator.blockChannels, [4, 8, 16, 32]);
    assert.deepEqual(discriminator.forward(zeros([2, 3, 32, 32])).shape, [2, 32, 2, 2]);
    assert.equal(SrganDiscriminator.outputSize(28), 2);
    assert.deepEqual(discriminator.forwardTo(zeros([2, 3, 32, 32]), 'block2').shape, [2, 8, 8, 8]);
  });
});

test('the task offers its discriminator as a probe module, fed full-resolution images as they are', () => {
  const task = smallTask();
  const probes = task.probes!();
  assert.deepEqual(Object.keys(probes), ['discriminator']);
  assert.equal(probes.discriminator.module, task.modules.discriminator);
  assert.equal(probes.discriminator.input, undefined);
});

// ---------------------------------------------------------------------------------------------
// Training

test('a few generator steps on a tiny batch reduce the MSE and raise the PSNR; no discriminator during warm-up', () => {
  const task = smallTask({ warmupEpochs: 1 });
  const lines = startEpoch(task, 0);
  assert.ok(lines.some((l) => /content loss is off \(weight 0\)/.test(l)));
  assert.equal(task.phases()[1].active!({ epoch: 0, step: 0 }), false);
  assert.equal(task.phases()[1].active!({ epoch: 1, step: 0 }), true);
  const log = tidy(() => trainPhases(task, task.prepare(batchOf(smoothImages(4, SIZE, 7)), new Generator(0)), 25, { betas: [0.9, 0.999] }));
  const [first, last] = [log[0], log.at(-1)!];
  assert.ok(last['generator/mse'] < 0.5 * first['generator/mse'], `mse ${first['generator/mse']} -> ${last['generator/mse']}`);
  assert.ok(last['generator/psnr'] > first['generator/psnr']);
  assert.ok(!('generator/adversarial' in last) && !('discriminator/acc' in last));
});

test('GAN phases each update only their own parameters; the discriminator loss leaves no gradient in the generator', () => {
  tidy(() => {
    const task = smallTask();
    startEpoch(task, 0);
    const [generator, discriminator] = task.phases().map((p) => p.parameters);
    const all = Object.values(task.modules).flatMap((m) => m.parameters());
    assert.equal(generator.length + discriminator.length, all.length);
    assert.ok(!generator.some((p) => discriminator.includes(p)));
    const snapshot = (params: nn.Parameter[]) => params.map((p) => p.clone());
    const unchanged = (params: nn.Parameter[], before: Tensor[]) => params.every((p, i) => p.equal(before[i]));
    const prepared = task.prepare(batchOf(smoothImages(4, SIZE, 8)), new Generator(0));
    const log = trainPhases(task, prepared, 1);
    for (const key of ['generator/mse', 'generator/adversarial', 'generator/ssim', 'generator/bicubicPsnr', 'discriminator/acc']) {
      assert.ok(Number.isFinite(log[0][key]), key);
    }
    // One phase at a time, nothing frozen: the discriminator's loss reaches no generator weight...
    const onePhase = (name: string) => {
      const phase = task.phases().find((p) => p.name === name)!;
      const opt = new optim.Adam(phase.parameters, { lr: 1e-3 });
      const before = { g: snapshot(generator), d: snapshot(discriminator) };
      for (const p of all) p.grad = undefined;
      task.step(prepared, name).loss.backward();
      opt.step();
      return before;
    };
    const afterD = onePhase('discriminator');
    assert.ok(generator.every((p) => p.grad === undefined));
    assert.ok(unchanged(generator, afterD.g) && !unchanged(discriminator, afterD.d));
    // ...and the generator's optimizer moves only the generator.
    const afterG = onePhase('generator');
    assert.ok(unchanged(discriminator, afterG.d) && !unchanged(generator, afterG.g));
  });
});

test('metrics are PSNR and SSIM on the luminance of un-normalized images, for SR and for bicubic', () => {
  tidy(() => {
    const task = smallTask() as TaskInstance & { quality(sr: Tensor, t: Tensor, b: Tensor): Record<string, Tensor> };
    const [mean, std] = [
      [0.4, 0.5, 0.6],
      [0.2, 0.25, 0.3],
    ];
    task.loadState!({ json: { normalization: { mean, std } } });
    const display = smoothImages(2, SIZE, 9).mul(0.8).add(0.1);
    const normalized = (t: Tensor) => normalizeImages(t, mean, std);
    // SR off by 0.05 in every channel: luminance off by 0.05, 26.02 dB; SSIM of a pure shift is just under 1.
    const metrics = task.quality(normalized(display.add(0.05)), normalized(display), normalized(display));
    assert.ok(Math.abs(metrics.psnr.item() - 20 * Math.log10(1 / 0.05)) < 1e-3, `psnr ${metrics.psnr.item()}`);
    assert.ok(metrics.ssim.item() > 0.95 && metrics.ssim.item() < 1);
    assert.ok(metrics.bicubicPsnr.item() > 99 && Math.abs(metrics.bicubicSsim.item() - 1) < 1e-5);
  });
});

test('the content loss compares features of a run loaded from its checkpoint; answers and the 4-column picture', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pretext-superres-'));
  try {
    tidy(() => {
      manualSeed(2);
      const network = createBackbone('alexnet-small');
      const mean = [0.5, 0.5, 0.5];
      const std = [0.25, 0.25, 0.25];
      saveCheckpoint(
        join(dir, 'checkpoints'),
        { step: 1, epoch: 1, batch: 0, modules: { backbone: network }, optimizers: {}, schedulers: {}, rng: {}, info: {} },
        'best',
      );
      const json = (name: string, value: unknown) => writeFileSync(join(dir, name), JSON.stringify(value));
      json('config.json', { backbone: 'alexnet-small' });
      json('data.json', { channels: 3, imageSize: 32, mean, std });
      const loaded = loadRunBackbone(dir);
      const probe = randn([2, 3, 32, 32]);
      network.eval();
      assert.ok(loaded.backbone.forward(probe).equal(network.forward(probe)));
      assert.ok(!loaded.backbone.training && loaded.backbone.parameters().every((p) => !p.requiresGrad));

      // The content run is read when training starts: a trained run still loads without it.
      const orphan = smallTask({ contentCheckpoint: join(dir, 'gone') }, 32);
      assert.throws(() => startEpoch(orphan, 0), /does not exist|no such file|ENOENT/i);
      const task = smallTask({ contentCheckpoint: dir, contentLayer: 'conv2', warmupEpochs: 1 }, 32);
      task.loadState!({ json: { normalization: { mean, std } } });
      assert.ok(startEpoch(task, 0).some((l) => /content loss 0.1 x relative MSE of alexnet-small features at conv2/.test(l)));
      const prepared = task.prepare(batchOf(normalizeImages(smoothImages(2, 32, 10), mean, std)), new Generator(0));
      // The warm-up is MSE only; the content loss starts with the adversarial phase.
      assert.deepEqual(Object.keys(task.step(prepared, 'generator').metrics).sort(), ['bicubicPsnr', 'bicubicSsim', 'mse', 'psnr', 'ssim']);
      startEpoch(task, 1);
      const result = task.step(prepared, 'generator');
      const sr = (task as TaskInstance & { predict(x: Tensor): Tensor }).predict(prepared.inputs);
      // Same normalization in both runs: the content network sees the normalized images as they are (unclamped).
      const truth = network.forwardTo(prepared.targets, 'conv2');
      const expected = nn.functional.mseLoss(network.forwardTo(sr, 'conv2'), truth).div(truth.square().mean());
      const content = result.metrics.content as Tensor;
      assert.ok(Math.abs(content.item() - expected.item()) < 1e-4 * expected.item(), `${content.item()} vs ${expected.item()}`);
      result.loss.backward();
      assert.ok(loaded.backbone.parameters().every((p) => p.grad === undefined));

      const answers = task.answers(prepared) as ImageAnswer[];
      assert.equal(answers[0].score?.name, 'PSNR');
      const picture = superresTask.picture(prepared, answers, (t) => t);
      assert.equal(picture.columns, 4);
      assert.deepEqual(picture.panels.shape, [8, 3, 32, 32]);
      assert.match(picture.captions[0], /^low-res 16 px$/);
      assert.match(picture.captions[2], /^SR -?\d+\.\d dB$/);
      assert.equal(superresTask.picture(prepared, undefined, (t) => t).columns, 3);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
