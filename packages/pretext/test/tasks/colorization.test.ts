import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  arange,
  fromTypedArray,
  Generator,
  nn,
  noGrad,
  rand,
  randint,
  randn,
  setNumThreads,
  tensor,
  testing,
  tidy,
  zeros,
  type Tensor,
} from '@pretext/torch';
import { normalizeImages, type Batch } from '../../src/data/loader.js';
import type { SampleStore } from '../../src/data/store.js';
import { extractFeatures } from '../../src/eval/features.js';
import { encoderInputOf } from '../../src/eval/pretrained-module.js';
import { SmallAlexNet } from '../../src/models/alexnet.js';
import type { Backbone } from '../../src/models/backbone.js';
import {
  abBins,
  abStatistics,
  annealedMean,
  colorizationTask,
  lightnessInput,
  nearestBin,
  rebalancingWeights,
  softCrossEntropy,
  softEncode,
} from '../../src/tasks/colorization.js';
import { labToLinearRgb, labToRgb, rgbToLab } from '../../src/tasks/lab.js';
import type { EpochContext, ImageAnswer, TaskInstance } from '../../src/tasks/task.js';
import { trainPhases } from './phases.js';

// One libtorch thread: OpenMP's two threads slow to a crawl when other processes share the cores.
setNumThreads(1);

const SIZE = 16;

const close = (actual: number[], expected: number[], tolerance: number, what: string) =>
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= tolerance, `${what}[${i}]: ${v} vs ${expected[i]}`));

test('sRGB to Lab matches published values for white, black, gray and the primaries', () => {
  tidy(() => {
    const colours: [number[], number[]][] = [
      [
        [1, 1, 1],
        [100, 0, 0],
      ],
      [
        [0, 0, 0],
        [0, 0, 0],
      ],
      // sRGB 119/255 is L* 50.
      [
        [119 / 255, 119 / 255, 119 / 255],
        [50.0, 0, 0],
      ],
      [
        [1, 0, 0],
        [53.24, 80.09, 67.2],
      ],
      [
        [0, 1, 0],
        [87.73, -86.18, 83.18],
      ],
      [
        [0, 0, 1],
        [32.3, 79.19, -107.86],
      ],
    ];
    const lab = rgbToLab(
      tensor(
        colours.map(([rgb]) => rgb),
        { dtype: 'float64' },
      ),
    );
    colours.forEach(([, expected], i) => close(lab.select(0, i).toArray(), expected, i === 2 ? 0.05 : 0.005, `Lab of colour ${i}`));
    // White and black are exact, not just close.
    close(lab.select(0, 0).toArray(), [100, 0, 0], 1e-9, 'white');
  });
});

test('Lab round-trips sRGB within 1e-4, on image batches in float32 and float64', () => {
  tidy(() => {
    for (const dtype of ['float32', 'float64'] as const) {
      const rgb = rand([4, 3, 8, 8], new Generator(3)).toDtype(dtype);
      const lab = rgbToLab(rgb);
      assert.deepEqual(lab.shape, [4, 3, 8, 8]);
      assert.equal(lab.dtype, dtype);
      const error = labToRgb(lab).sub(rgb).abs().max().item();
      assert.ok(error < 1e-4, `${dtype} round trip error ${error}`);
    }
    // Out-of-gamut Lab is clipped into [0, 1]; linear RGB shows it is out.
    const outside = tensor([[50, 120, -120]]);
    assert.ok(labToLinearRgb(outside).lt(0).any().item());
    const clipped = labToRgb(outside);
    assert.ok(clipped.ge(0).all().item() && clipped.le(1).all().item());
  });
});

/** The paper's 313 bins (richzhang/colorization pts_in_hull.npy) as, per a, the range of b (multiples of 10). */
const PAPER_BINS: [number, number, number][] = [
  [-90, 50, 90],
  [-80, 20, 90],
  [-70, 0, 90],
  [-60, -20, 90],
  [-50, -30, 100],
  [-40, -40, 100],
  [-30, -50, 100],
  [-20, -50, 100],
  [-10, -60, 100],
  [0, -70, 100],
  [10, -80, 90],
  [20, -80, 90],
  [30, -90, 90],
  [40, -100, 90],
  [50, -100, 80],
  [60, -110, 80],
  [70, -110, 80],
  [80, -110, 70],
  [90, -110, 70],
  [100, -90, 0],
];

test('the in-gamut ab bins: 309 grid points, the paper 313 less four at its edge', () => {
  const paper = new Set(PAPER_BINS.flatMap(([a, lo, hi]) => Array.from({ length: (hi - lo) / 10 + 1 }, (_, k) => `${a},${lo + 10 * k}`)));
  assert.equal(paper.size, 313);
  const bins = abBins();
  assert.deepEqual(bins.shape, [309, 2]);
  const ours = new Set<string>();
  const values = bins.toArray();
  for (let i = 0; i < values.length; i += 2) ours.add(`${values[i]},${values[i + 1]}`);
  assert.equal(ours.size, 309);
  const extra = [...ours].filter((bin) => !paper.has(bin));
  const missing = [...paper].filter((bin) => !ours.has(bin)).sort();
  assert.deepEqual(extra, []);
  assert.deepEqual(missing, ['100,-10', '100,-90', '100,0', '40,90']);
  // Every sRGB colour (a random sample) has its four surrounding grid points among the bins.
  tidy(() => {
    const ab = rgbToLab(rand([20000, 3], new Generator(5)))
      .narrow(1, 1, 2)
      .toArray();
    for (let i = 0; i < ab.length; i += 2) {
      const [a, b] = [Math.floor(ab[i] / 10) * 10, Math.floor(ab[i + 1] / 10) * 10];
      for (const corner of [`${a},${b}`, `${a + 10},${b}`, `${a},${b + 10}`, `${a + 10},${b + 10}`]) {
        assert.ok(ours.has(corner), `colour ab (${ab[i]}, ${ab[i + 1]}) lacks bin ${corner}`);
      }
    }
  });
  // Computed once per process.
  assert.equal(abBins(), bins);
});

test('nearest-bin and soft encoding: the 5 nearest bins by brute force, Gaussian weights summing to 1', () => {
  tidy(() => {
    const bins = abBins();
    const centres = bins.toArray();
    const points = randn([50, 2], new Generator(2)).mul(40);
    const { index, weights } = softEncode(points, bins, 5, 5);
    assert.deepEqual(index.shape, [50, 5]);
    const [p, idx, w] = [points.toArray(), index.toArray(), weights.toArray()];
    const nearest = nearestBin(points, bins).toArray();
    for (let i = 0; i < 50; i++) {
      const distances = Array.from(
        { length: bins.shape[0] },
        (_, q) => (p[2 * i] - centres[2 * q]) ** 2 + (p[2 * i + 1] - centres[2 * q + 1]) ** 2,
      );
      const order = distances.map((d, q) => [d, q]).sort((x, y) => x[0] - y[0]);
      assert.deepEqual(
        idx.slice(5 * i, 5 * i + 5).map((q) => distances[q]),
        order.slice(0, 5).map(([d]) => d),
        `point ${i}: not the 5 nearest bins`,
      );
      assert.equal(nearest[i], idx[5 * i]);
      const gaussian = order.slice(0, 5).map(([d]) => Math.exp(-d / 50));
      const total = gaussian.reduce((s, g) => s + g);
      close(
        w.slice(5 * i, 5 * i + 5),
        gaussian.map((g) => g / total),
        1e-5,
        `weights of point ${i}`,
      );
    }
    close(weights.sum(1).toArray(), Array(50).fill(1), 1e-6, 'weight sums');
    // A bin centre encodes to itself first, with the largest weight.
    const own = softEncode(bins.narrow(0, 100, 3), bins);
    assert.deepEqual(own.index.select(1, 0).toArray(), [100, 101, 102]);
    assert.ok(
      own.weights
        .select(1, 0)
        .gt(own.weights.narrow(1, 1, 4).amax(1))
        .all()
        .item(),
    );
  });
});

test('rebalancing weights on a hand-made two-bin prior match the paper formula computed by hand', () => {
  tidy(() => {
    const bins = tensor([
      [0, 0],
      [10, 0],
    ]);
    // Unnormalized counts 3 : 1; smoothing with sigma 5 couples bins 10 apart by exp(-100 / 50).
    const prior = tensor([3, 1]);
    const k = Math.exp(-2);
    const smoothedRaw = [0.75 + 0.25 * k, 0.25 + 0.75 * k];
    const smoothed = smoothedRaw.map((s) => s / (smoothedRaw[0] + smoothedRaw[1]));
    const raw = smoothed.map((s) => 1 / (0.5 * s + 0.5 / 2));
    const expectation = raw[0] * smoothed[0] + raw[1] * smoothed[1];
    close(
      rebalancingWeights(prior, bins, 0.5, 5).toArray(),
      raw.map((w) => w / expectation),
      1e-6,
      'lambda 0.5',
    );
    // lambda 1 ignores the prior; lambda 0 is the inverse smoothed prior.
    close(rebalancingWeights(prior, bins, 1, 5).toArray(), [1, 1], 1e-6, 'lambda 1');
    const inverse = rebalancingWeights(prior, bins, 0, 5).toArray();
    close([inverse[0] * smoothed[0], inverse[1] * smoothed[1]], [0.5, 0.5], 1e-6, 'lambda 0');
    // The rare bin is up-weighted.
    const [common, rare] = rebalancingWeights(prior, bins).toArray();
    assert.ok(rare > 1 && common < 1);
  });
});

test('annealed mean: the mode as T -> 0, the mean at T = 1', () => {
  tidy(() => {
    const bins = abBins();
    // Random logits with a clear mode per pixel (a bump of 10 on one bin).
    const generator = new Generator(4);
    const bump = randint(0, bins.shape[0], [2, 3, 3], generator).oneHot(bins.shape[0]).movedim(-1, 1).mul(10);
    const logits = randn([2, bins.shape[0], 3, 3], generator).add(bump);
    const modes = bins.index(logits.argmax(1).reshape(-1)).view([2, 3, 3, 2]).movedim(-1, 1);
    assert.ok(annealedMean(logits, bins, 0.02).sub(modes).abs().max().item() < 1e-3);
    const mean = nn.functional.softmax(logits, 1).movedim(1, -1).matmul(bins).movedim(-1, 1);
    assert.ok(annealedMean(logits, bins, 1).sub(mean).abs().max().item() < 1e-4);
  });
});

test('the soft cross-entropy: gradients match finite differences, rebalancing scales each pixel', () => {
  tidy(() => {
    const generator = new Generator(6);
    const logits = randn([2, 6, 2, 2], generator).double().requiresGrad_(true);
    const index = tensor([0, 2, 5, 1, 3, 4]).view([1, 6, 1, 1]).expand([2, 6, 2, 2]).narrow(1, 0, 3).contiguous();
    const weights = nn.functional.softmax(randn([2, 3, 2, 2], generator), 1).double();
    const pixelWeights = rand([2, 2, 2], generator).add(0.5).double();
    const result = testing.gradcheck((x: Tensor) => softCrossEntropy(x, index, weights, pixelWeights), [logits]);
    assert.ok(result.ok, JSON.stringify(result));
    // A one-hot target without weights is the ordinary cross-entropy.
    const hard = tensor([1, 0, 0]).double().view([1, 3, 1, 1]).expand([2, 3, 2, 2]);
    const expected = nn.functional.crossEntropy(logits.detach(), index.select(1, 0));
    assert.ok(Math.abs(softCrossEntropy(logits, index, hard).item() - expected.item()) < 1e-12);
    const doubled = softCrossEntropy(logits, index, weights, pixelWeights.mul(2)).item();
    assert.ok(Math.abs(doubled - 2 * softCrossEntropy(logits, index, weights, pixelWeights).item()) < 1e-12);
  });
});

/** A store of `n` 16 x 16 RGB images: horizontal colour ramps between two random colours. */
function rampStore(n: number, seed = 1): SampleStore {
  const images = new Uint8Array(n * SIZE * SIZE * 3);
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) >>> 0) >>> 16) / 65536;
  for (let i = 0; i < n; i++) {
    const [from, to] = [0, 1].map(() => [0, 1, 2].map(() => random() * 255));
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const t = x / (SIZE - 1);
        images.set(
          from.map((c, k) => Math.round(c + (to[k] - c) * t)),
          ((i * SIZE + y) * SIZE + x) * 3,
        );
      }
    }
  }
  return {
    images,
    n,
    height: SIZE,
    width: SIZE,
    channels: 3,
    labels: new Int32Array(n),
    classNames: ['ramp'],
    paths: Array.from({ length: n }, (_, i) => `ramp${i}`),
  };
}

/** Store samples normalized with the store's own statistics (as the loader does with 'dataset'). */
function batchOf(store: SampleStore, count: number, mean: number[], std: number[]): Batch {
  return tidy(() => {
    const rgb = fromTypedArray(store.images.subarray(0, count * SIZE * SIZE * 3), [count, SIZE, SIZE, 3])
      .permute([0, 3, 1, 2])
      .float()
      .div(255);
    return { images: normalizeImages(rgb, mean, std), labels: zeros([count], 'int64'), indices: arange(0, count, 1, 'int64'), index: 0 };
  });
}

function makeTask(options: Record<string, unknown> = {}, store?: SampleStore): TaskInstance {
  const o = colorizationTask.options.parse({ decoderWidth: 16, priorSamples: 40, ...options });
  return colorizationTask.create(new SmallAlexNet({ width: 8, inChannels: 1 }), o, { inChannels: 3, imageSize: SIZE, store });
}

/** A task created on a ramp store of `n` images, and all of them as a batch normalized with the task's statistics. */
function rampTask(n: number, options: Record<string, unknown> = {}) {
  const store = rampStore(n);
  const task = makeTask(options, store);
  const { mean, std } = (task.state!().json as { normalization: { mean: number[]; std: number[] } }).normalization;
  return { store, task, mean, std, batch: batchOf(store, n, mean, std) };
}

test('the prior, mean ab and baseline from a store: a distribution over the bins, logged once, kept in the task state', () => {
  const store = rampStore(60);
  const bins = abBins();
  const stats = abStatistics(store, bins, 40);
  try {
    assert.equal(stats.images, 40);
    assert.ok(Math.abs(stats.prior.sum().item() - 1) < 1e-5);
    assert.ok(stats.prior.ge(0).all().item());
    // The same seed draws the same sample; all images when asked for more than the store has.
    assert.ok(abStatistics(store, bins, 40).prior.equal(stats.prior));
    const all = abStatistics(store, bins, 1000);
    assert.equal(all.images, 60);
    // The mean ab and the baseline computed directly on all images.
    tidy(() => {
      const { images } = batchOf(store, 60, [0, 0, 0], [1, 1, 1]);
      const lab = rgbToLab(images);
      close(all.meanAb.toArray(), lab.narrow(1, 1, 2).mean([0, 2, 3]).toArray(), 1e-3, 'mean ab');
      assert.ok(all.baseline.psnr > 5 && all.baseline.psnr < 40);
    });

    const task = makeTask({}, store);
    const lines: string[] = [];
    const context = (epoch: number, resumed = false) =>
      ({ epoch, resumed, log: (line: string) => lines.push(line) }) as unknown as EpochContext;
    task.onEpochStart!(context(0));
    task.onEpochStart!(context(1));
    task.onEpochStart!(context(0, true));
    assert.equal(lines.length, 1);
    assert.match(lines[0], /309 ab bins; mean-ab baseline on 40 training images: abL2 [\d.]+, PSNR [\d.]+ dB/);
    assert.ok(lines[0].endsWith(`PSNR ${stats.baseline.psnr.toFixed(2)} dB`));

    // A task created without the store (a loaded run) takes the prior, mean ab and normalization from the state.
    const state = task.state!();
    assert.ok(state.tensors!.abPrior.equal(stats.prior));
    const loaded = makeTask();
    loaded.loadState!(state);
    const again = loaded.state!();
    assert.ok(again.tensors!.abPrior.equal(stats.prior) && again.tensors!.meanAb.equal(stats.meanAb));
    assert.deepEqual(again.json, state.json);
  } finally {
    for (const t of [stats.prior, stats.meanAb]) t.dispose();
  }
});

test('encoderInput gives the backbone the same L input as prepare, for normalized RGB and gray images', () => {
  const { task, batch } = rampTask(8);
  tidy(() => {
    const prepared = task.prepare(batch, new Generator(0));
    assert.deepEqual(prepared.inputs.shape, [8, 1, SIZE, SIZE]);
    assert.ok(task.encoderInput!(batch.images).equal(prepared.inputs));
    // L of the un-normalized RGB, scaled to [-1, 1].
    const rgb = batchOf(rampStore(8), 8, [0, 0, 0], [1, 1, 1]).images;
    assert.ok(
      prepared.inputs
        .sub(lightnessInput(rgbToLab(rgb).narrow(1, 0, 1)))
        .abs()
        .max()
        .item() < 1e-4,
    );
    assert.ok(
      prepared.inputs
        .ge(-1 - 1e-6)
        .all()
        .item() &&
        prepared.inputs
          .le(1 + 1e-6)
          .all()
          .item(),
    );
  });
  // Gray data: the L of the gray value.
  const gray = colorizationTask.create(
    new SmallAlexNet({ width: 8, inChannels: 1 }),
    colorizationTask.options.parse({ decoderWidth: 16 }),
    {
      inChannels: 1,
      imageSize: SIZE,
    },
  );
  tidy(() => {
    const images = rand([2, 1, SIZE, SIZE], new Generator(8));
    const expected = lightnessInput(rgbToLab(images.expand([2, 3, SIZE, SIZE])).narrow(1, 0, 1));
    assert.ok(gray.encoderInput!(images).sub(expected).abs().max().item() < 1e-5);
  });
});

for (const [loss, extra] of [
  ['classification', {}],
  ['regression', {}],
  ['regression', { regressionLoss: 'smoothL1' }],
] as const) {
  test(`a few optimizer steps on a tiny batch reduce the ${loss} loss ${JSON.stringify(extra)}`, () => {
    const { task, batch } = rampTask(8, { loss, ...extra });
    tidy(() => {
      const prepared = task.prepare(batch, new Generator(0));
      const lossNow = () => noGrad(() => task.step(prepared, 'main').loss.item());
      const before = lossNow();
      const log = trainPhases(task, prepared, 25, { lr: 3e-3, betas: [0.9, 0.999] });
      const after = lossNow();
      assert.ok(after < 0.7 * before, `loss ${before} -> ${after}`);
      const [first, last] = [log[0], log.at(-1)!];
      assert.ok(last['main/psnr'] > first['main/psnr'], `psnr ${first['main/psnr']} -> ${last['main/psnr']}`);
      const metrics = Object.keys(first).sort();
      const expected = ['abL2', 'baselineAbL2', 'baselinePsnr', 'psnr', ...(loss === 'classification' ? ['binAcc'] : [])];
      assert.deepEqual(metrics, expected.map((m) => `main/${m}`).sort());
    });
  });
}

test('answers and picture: recolored images normalized like the inputs, rows of L input | colorized | truth', () => {
  const { task, batch, mean, std } = rampTask(6);
  tidy(() => {
    const prepared = task.prepare(batch, new Generator(0));
    const answers = task.answers(prepared) as ImageAnswer[];
    assert.equal(answers.length, 6);
    const display = (images: Tensor) =>
      images
        .mul(tensor(std).view([1, 3, 1, 1]))
        .add(tensor(mean).view([1, 3, 1, 1]))
        .clamp(0, 1);
    for (const answer of answers) {
      assert.deepEqual(answer.image.shape, [3, SIZE, SIZE]);
      assert.equal(answer.score!.name, 'PSNR');
    }
    // The score is the PSNR of the displayed answer against the truth.
    const shown = display(answers[0].image.unsqueeze(0));
    const truth = display(batch.images.narrow(0, 0, 1));
    const mse = shown.sub(truth).square().mean().item();
    close([answers[0].score!.value], [-10 * Math.log10(mse)], 1e-2, 'PSNR');

    const picture = colorizationTask.picture(prepared, answers, display);
    assert.deepEqual(picture.panels.shape, [18, 3, SIZE, SIZE]);
    assert.equal(picture.columns, 3);
    assert.equal(picture.captions.length, 18);
    assert.deepEqual(
      picture.captions.slice(0, 3).map((c) => c.split(' ')[0]),
      ['L', 'colorized', 'truth'],
    );
    assert.ok(picture.panels.ge(0).all().item() && picture.panels.le(1).all().item());
    // The L panel is gray; the truth panel is the image itself.
    const grayPanel = picture.panels.select(0, 0);
    assert.ok(grayPanel.amax(0).sub(grayPanel.amin(0)).max().item() < 1e-3);
    assert.ok(picture.panels.select(0, 2).sub(truth.squeeze(0)).abs().max().item() < 1e-4);
    const bare = colorizationTask.picture(prepared, undefined, display);
    assert.deepEqual(bare.panels.shape, [12, 3, SIZE, SIZE]);
    assert.equal(bare.columns, 2);
  });
});

test('the task asks for a 1-channel backbone and refuses another', () => {
  assert.equal(colorizationTask.inputChannels!(3, colorizationTask.options.parse({})), 1);
  assert.throws(
    () =>
      colorizationTask.create(new SmallAlexNet({ width: 8, inChannels: 3 }), colorizationTask.options.parse({}), {
        inChannels: 3,
        imageSize: SIZE,
      }),
    /takes the L channel only/,
  );
});

test("evaluation feeds the backbone the task's encoder input: the L of the data's RGB images", async () => {
  const { store, task, batch, mean, std } = rampTask(6);
  const { backbone } = task.modules as { backbone: Backbone };
  backbone.eval();
  const block = backbone.blockNames.at(-1)!;
  const features = await extractFeatures(backbone, store, { block, normalization: { mean, std }, encoderInput: encoderInputOf(task) });
  const expected = noGrad(() => backbone.forward(task.encoderInput!(batch.images)).mean([2, 3]));
  assert.deepEqual(features.shape, expected.shape);
  assert.ok(features.sub(expected).abs().max().item() < 1e-5);
  // Without the mapping the L-input backbone cannot read RGB data.
  await assert.rejects(extractFeatures(backbone, store, { block, normalization: { mean, std } }), /1-channel images but the data has 3/);
});
