import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  arange,
  fromTypedArray,
  Generator,
  manualSeed,
  nn,
  optim,
  randint,
  randn,
  setNumThreads,
  stack,
  tensor,
  tidy,
  type Tensor,
} from '@pretext/torch';
import { CIFAR10_CLASSES, ensureCifar10Jpeg, loadCifar10, loadFashionMnist, type SampleStore } from '../../src/data/index.js';
import { imageBatch } from '../../src/data/loader.js';
import { SmallAlexNet } from '../../src/models/alexnet.js';
import { contextTask } from '../../src/tasks/context.js';
import { assembleTiles, jigsawGeometry, jigsawTask, shuffleTiles, solveTiles, tileOffsets } from '../../src/tasks/jigsaw.js';
import { extractPatches, jitterChannels, normalizePatches, randomGrayscale } from '../../src/tasks/patches.js';
import { permutationSet } from '../../src/tasks/permutations.js';
import type { PretextTask } from '../../src/tasks/task.js';

// One libtorch thread: OpenMP's two threads slow to a crawl when other processes share the cores.
setNumThreads(1);

const batchOf = imageBatch;

/** Channel 0 holds the row, channel 1 the column, channel 2 row * size + column. */
function coordinateImage(n: number, size: number): Tensor {
  const rows = arange(0, size, 1, 'float32').view([size, 1]).expand([size, size]);
  const cols = arange(0, size, 1, 'float32').view([1, size]).expand([size, size]);
  return stack([rows, cols, rows.mul(size).add(cols)])
    .unsqueeze(0)
    .expand([n, 3, size, size])
    .contiguous();
}

test('extractPatches equals direct slicing, for whole patches and per channel', () => {
  tidy(() => {
    const images = randn([2, 3, 12, 12]);
    const y = tensor([
      [0, 5],
      [7, 3],
    ]);
    const x = tensor([
      [2, 0],
      [6, 7],
    ]);
    const patches = extractPatches(images, { y, x }, 5);
    assert.deepEqual(patches.shape, [2, 2, 3, 5, 5]);
    const yy = y.toArray();
    const xx = x.toArray();
    for (let n = 0; n < 2; n++) {
      for (let t = 0; t < 2; t++) {
        const expected = images
          .select(0, n)
          .narrow(1, yy[n * 2 + t], 5)
          .narrow(2, xx[n * 2 + t], 5);
        assert.ok(patches.select(0, n).select(0, t).equal(expected));
      }
    }
    const yc = tensor([[[0, 1, 2]], [[7, 6, 5]]]);
    const xc = tensor([[[3, 0, 7]], [[1, 2, 4]]]);
    const perChannel = extractPatches(images, { y: yc, x: xc }, 5);
    assert.deepEqual(perChannel.shape, [2, 1, 3, 5, 5]);
    for (let n = 0; n < 2; n++) {
      for (let c = 0; c < 3; c++) {
        const expected = images
          .select(0, n)
          .select(0, c)
          .narrow(0, yc.toArray()[n * 3 + c], 5)
          .narrow(1, xc.toArray()[n * 3 + c], 5);
        assert.ok(perChannel.select(0, n).select(0, 0).select(0, c).equal(expected));
      }
    }
    assert.throws(() => extractPatches(images, { y: y.add(1), x }, 5), /y offsets must be in \[0, 7\]/);
    assert.throws(() => extractPatches(images, { y, x: x.sub(1) }, 5), /x offsets/);
  });
});

test('normalizePatches gives every patch mean 0 and std 1 over its own pixels', () => {
  tidy(() => {
    const patches = randn([4, 9, 3, 6, 6])
      .mul(randn([4, 9, 1, 1, 1]).abs().add(0.5))
      .add(randn([4, 9, 1, 1, 1]).mul(5));
    const normalized = normalizePatches(patches);
    assert.ok(normalized.mean([2, 3, 4]).abs().max().item() < 1e-5);
    assert.ok(normalized.std([2, 3, 4], 0).sub(1).abs().max().item() < 1e-4);
  });
});

test('jigsaw geometry: tiles stay inside their cells and channel jitter stays within ±k', () => {
  tidy(() => {
    const g = jigsawGeometry(64);
    assert.deepEqual(g, { imageSize: 64, cell: 21, tile: 18, origin: 0 });
    assert.equal(jigsawGeometry(65).origin, 1);
    assert.throws(() => jigsawGeometry(64, 22), RangeError);
    const { y, x } = tileOffsets(200, g, new Generator(1));
    const ys = y.toArray();
    const xs = x.toArray();
    for (let i = 0; i < ys.length; i++) {
      const k = i % 9;
      const [top, left] = [Math.floor(k / 3) * g.cell, (k % 3) * g.cell];
      assert.ok(ys[i] >= top && ys[i] <= top + g.cell - g.tile, `tile ${k}: y ${ys[i]}`);
      assert.ok(xs[i] >= left && xs[i] <= left + g.cell - g.tile, `tile ${k}: x ${xs[i]}`);
    }
    const jittered = jitterChannels(y, 3, 2, 64 - 18, new Generator(2));
    assert.deepEqual(jittered.shape, [200, 9, 3]);
    const shift = jittered.sub(y.unsqueeze(2));
    assert.ok(shift.abs().max().item() === 2 && jittered.min().item() >= 0 && jittered.max().item() <= 46);
  });
});

test('tiles cut at the cell corners reassemble into the image', () => {
  tidy(() => {
    const images = randn([2, 3, 30, 30]);
    const g = jigsawGeometry(30, 10);
    const starts = [0, 0, 0, 10, 10, 10, 20, 20, 20];
    const y = tensor([starts, starts]);
    const x = tensor([0, 10, 20, 0, 10, 20, 0, 10, 20]).view([1, 9]).expand([2, 9]);
    assert.equal(g.cell, 10);
    assert.ok(assembleTiles(extractPatches(images, { y, x }, 10)).equal(images));
  });
});

test('shuffleTiles puts tile order[i] at position i, and solveTiles undoes it', () => {
  tidy(() => {
    const tiles = arange(0, 9, 1, 'float32')
      .view([1, 9, 1, 1, 1])
      .expand([2, 9, 1, 2, 2])
      .add(arange(0, 2, 1, 'float32').view([2, 1, 1, 1, 1]).mul(10));
    const order = tensor([
      [2, 0, 1, 5, 3, 4, 8, 6, 7],
      [8, 7, 6, 5, 4, 3, 2, 1, 0],
    ]);
    const shuffled = shuffleTiles(tiles, order);
    assert.deepEqual(
      shuffled.select(3, 0).select(3, 0).select(2, 0).toArray(),
      [2, 0, 1, 5, 3, 4, 8, 6, 7, 18, 17, 16, 15, 14, 13, 12, 11, 10],
    );
    assert.ok(solveTiles(shuffled, order).equal(tiles));
  });
});

test('randomGrayscale: probability 1 makes channels equal, 0 keeps the patch, per image draws cover all tiles', () => {
  tidy(() => {
    const patches = randn([40, 9, 3, 4, 4]);
    const gray = randomGrayscale(patches, 1, new Generator(0));
    assert.ok(gray.select(2, 0).equal(gray.select(2, 1)) && gray.select(2, 1).equal(gray.select(2, 2)));
    assert.ok(
      gray
        .select(2, 0)
        .allclose(patches.select(2, 0).mul(0.299).add(patches.select(2, 1).mul(0.587)).add(patches.select(2, 2).mul(0.114)), 1e-5, 1e-6),
    );
    assert.ok(randomGrayscale(patches, 0, new Generator(0)).equal(patches));
    // Per image: the nine tiles of an image are all gray or all in colour.
    const some = randomGrayscale(patches, 0.5, new Generator(3));
    const grayTiles = some.select(2, 0).eq(some.select(2, 1)).flatten(2).toDtype('int64').amin(2);
    assert.ok(grayTiles.amin(1).eq(grayTiles.amax(1)).all().item());
    const grayImages = grayTiles.select(1, 0).sum().item();
    assert.ok(grayImages > 5 && grayImages < 35, `${grayImages} of 40 images gray`);
  });
});

test('a jigsaw input un-permuted by its label reproduces the tiles of the image', () => {
  tidy(() => {
    const images = coordinateImage(4, 64);
    const o = jigsawTask.options.parse({ permutations: 10, channelJitter: 0, grayscaleProbability: 0 });
    const instance = jigsawTask.create(new SmallAlexNet({ width: 8 }), o, { inChannels: 3, imageSize: 64 });
    const prepared = instance.prepare(batchOf(images), new Generator(7));
    // The same draws by hand: tile corners, then the permutation indices.
    const generator = new Generator(7);
    const g = jigsawGeometry(64);
    const offsets = tileOffsets(4, g, generator);
    const targets = randint(0, 10, [4], generator);
    assert.ok(prepared.targets.equal(targets));
    const raw = extractPatches(images, offsets, g.tile);
    const tiles = normalizePatches(raw);
    const set = permutationSet({ count: 10, variant: 'maxavg', seed: 0 }).permutations;
    const order = tensor(targets.toArray().map((t) => set[t]));
    assert.ok(prepared.extra!.order.equal(order));
    assert.deepEqual(prepared.inputs.shape, [4, 9, 3, 18, 18]);
    assert.ok(solveTiles(prepared.inputs, order).equal(tiles));
    // Position i of the input is tile order[i], whose top-left pixel lies in that tile's cell.
    const corners = raw.select(2, 2).select(2, 0).select(2, 0).toArray();
    const orders = order.toArray();
    for (let n = 0; n < 4; n++) {
      for (let i = 0; i < 9; i++) {
        assert.ok(
          prepared.inputs
            .select(0, n)
            .select(0, i)
            .equal(tiles.select(0, n).select(0, orders[n * 9 + i])),
        );
        const k = orders[n * 9 + i];
        const [row, col] = [Math.floor(corners[n * 9 + k] / 64), corners[n * 9 + k] % 64];
        assert.equal(Math.floor(row / g.cell) * 3 + Math.floor(col / g.cell), k);
      }
    }
  });
});

test('jigsaw with colour jitter and grayscale: normalized tiles; picture shows tiles and the solved puzzle', () => {
  tidy(() => {
    const o = jigsawTask.options.parse({ permutations: 10 });
    assert.equal(o.channelJitter, 1);
    assert.equal(o.grayscaleProbability, 0.3);
    const instance = jigsawTask.create(new SmallAlexNet({ width: 8 }), o, { inChannels: 3, imageSize: 64 });
    // A 32x32 batch is resized to the task's 64x64 first.
    const prepared = instance.prepare(batchOf(randn([3, 3, 32, 32])), new Generator(1));
    assert.deepEqual(prepared.inputs.shape, [3, 9, 3, 18, 18]);
    assert.ok(prepared.inputs.mean([2, 3, 4]).abs().max().item() < 1e-5);
    const answers = [0, 1, 2].map((i) => ({ target: i, predicted: i === 1 ? 5 : i, correct: i !== 1 }));
    const picture = jigsawTask.picture(prepared, answers, (x) => x);
    assert.equal(picture.columns, 10);
    assert.deepEqual(picture.panels.shape, [30, 3, 54, 54]);
    assert.ok(picture.panels.min().item() >= 0 && picture.panels.max().item() <= 1);
    assert.equal(picture.captions.length, 30);
    assert.match(picture.captions[9], /✓/);
    assert.match(picture.captions[19], /→ #5 ✗/);
    // The solved panel is the shuffled tiles put back: its top-left tile is the tile showing cell 1.
    const cells = prepared.extra!.order.toArray();
    const first = cells.slice(0, 9).indexOf(0);
    const tilePanel = picture.panels.select(0, first);
    const solvedCorner = picture.panels.select(0, 9).narrow(1, 0, 18).narrow(2, 0, 18);
    assert.ok(nn.functional.interpolate(solvedCorner.unsqueeze(0), { size: 54, mode: 'nearest' }).squeeze(0).equal(tilePanel));
    assert.equal(picture.captions[first], 'cell 1');
  });
});

/** `count` real images, normalized per channel, at `size` x `size`: a CIFAR-10 slice, else Fashion-MNIST. */
async function realImages(count: number, size: number): Promise<Tensor> {
  let store: SampleStore;
  const dir = mkdtempSync(join(tmpdir(), 'pretext-slice-'));
  try {
    const root = ensureCifar10Jpeg();
    for (const name of CIFAR10_CLASSES) {
      mkdirSync(join(dir, 'train', name), { recursive: true });
      for (const file of readdirSync(join(root, 'train', name))
        .sort()
        .slice(0, Math.ceil(count / 10))) {
        copyFileSync(join(root, 'train', name, file), join(dir, 'train', name, file));
      }
    }
    store = await loadCifar10({ split: 'train', dir, cacheDir: dir, log: () => {}, onProgress: () => {} });
  } catch {
    store = loadFashionMnist({ split: 'test' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const { height: h, width: w, channels: c } = store;
  const pixels = fromTypedArray(store.images.subarray(0, count * h * w * c), [count, h, w, c])
    .permute([0, 3, 1, 2])
    .float()
    .div(255);
  const normalized = pixels.sub(pixels.mean([0, 2, 3], true)).div(pixels.std([0, 2, 3], 0, true));
  return nn.functional.interpolate(normalized, { size, mode: 'bilinear' });
}

/** Mean loss of the first and of the last `window` of `steps` SGD steps of a task's model, cycling over `count` real images. */
async function smokeTrain(task: PretextTask, taskOptions: object, o: { count: number; steps: number; batchSize: number; window: number }) {
  const images = await realImages(o.count, 64);
  const channels = images.shape[1];
  manualSeed(0);
  const instance = task.create(new SmallAlexNet({ width: 16, inChannels: channels }), task.options.parse(taskOptions), {
    inChannels: channels,
    imageSize: 64,
  });
  const [phase] = instance.phases();
  const optimizer = new optim.SGD(phase.parameters, { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const generator = new Generator(0);
  const losses: number[] = [];
  for (let step = 0; step < o.steps; step++) {
    const start = (step * o.batchSize) % o.count;
    const loss = tidy(() => {
      const prepared = instance.prepare(batchOf(images.narrow(0, start, o.batchSize)), generator);
      optimizer.zeroGrad();
      const { loss } = instance.step(prepared, phase.name);
      loss.backward();
      optimizer.step();
      return loss.item();
    });
    losses.push(loss);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { losses, first: mean(losses.slice(0, o.window)), last: mean(losses.slice(-o.window)) };
}

// Training smoke tests of both patch tasks (they share SiamesePatchModel from patches.ts).
test('jigsaw smoke: SGD steps on real images lower the loss', async (t) => {
  const { losses, first, last } = await smokeTrain(jigsawTask, { permutations: 8 }, { count: 64, steps: 60, batchSize: 16, window: 10 });
  t.diagnostic(`losses ${losses.map((l) => l.toFixed(2)).join(' ')}`);
  assert.ok(last < first - 0.2, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
});

// Colour dropping makes the first steps much slower (one channel per patch, a different one per
// patch), so the smoke test projects colours instead.
test('context smoke: SGD steps on real images lower the loss', async (t) => {
  const { losses, first, last } = await smokeTrain(
    contextTask,
    { colorHandling: 'project' },
    { count: 32, steps: 100, batchSize: 32, window: 10 },
  );
  t.diagnostic(`losses ${losses.map((l) => l.toFixed(2)).join(' ')}`);
  assert.ok(last < first - 0.2, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
});
