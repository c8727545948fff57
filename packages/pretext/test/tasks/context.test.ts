import assert from 'node:assert/strict';
import { test } from 'node:test';
import { arange, Generator, randn, setNumThreads, stack, tidy, zeros, type Tensor } from '@pretext/torch';
import { imageBatch } from '../../src/data/loader.js';
import { SmallAlexNet } from '../../src/models/alexnet.js';
import { contextGeometry, contextTask, NEIGHBOURS, pairOffsets, POSITION_NAMES } from '../../src/tasks/context.js';
import { dropColors, projectOutGreenMagenta } from '../../src/tasks/patches.js';

// One libtorch thread: OpenMP's two threads slow to a crawl when other processes share the cores.
setNumThreads(1);

const batchOf = imageBatch;

/** Channel 0 holds the row, channel 1 the column, channel 2 zero. */
function coordinateImage(n: number, size: number, channels = 3): Tensor {
  const rows = arange(0, size, 1, 'float32').view([size, 1]).expand([size, size]);
  const cols = arange(0, size, 1, 'float32').view([1, size]).expand([size, size]);
  const planes = [rows, cols, zeros([size, size])].slice(0, channels);
  return stack(planes).unsqueeze(0).expand([n, channels, size, size]).contiguous();
}

test('context geometry scales the paper (96-px patches, 48-px gaps, 7-px jitter) and must fit', () => {
  assert.deepEqual(contextGeometry(64), { imageSize: 64, patch: 15, gap: 7, jitter: 1, span: 59 });
  assert.deepEqual(contextGeometry(32), { imageSize: 32, patch: 7, gap: 3, jitter: 0, span: 27 });
  assert.deepEqual(contextGeometry(398), { imageSize: 398, patch: 96, gap: 48, jitter: 7, span: 384 });
  assert.throws(() => contextGeometry(64, { patchSize: 20 }), /need 76 px, the image has 64/);
});

test('context labels match the geometry: the neighbour lies at the labelled position for all 8 classes', () => {
  tidy(() => {
    const g = contextGeometry(64);
    const o = contextTask.options.parse({ colorHandling: 'none' });
    const instance = contextTask.create(new SmallAlexNet({ width: 8 }), o, { inChannels: 3, imageSize: 64 });
    const n = 200;
    const prepared = instance.prepare(batchOf(coordinateImage(n, 64)), new Generator(3));
    assert.deepEqual(prepared.inputs.shape, [n, 2, 3, g.patch, g.patch]);
    const labels = prepared.targets.toArray();
    assert.equal(new Set(labels).size, 8);
    const stride = g.patch + g.gap;
    const rows = prepared.inputs.select(2, 0);
    const cols = prepared.inputs.select(2, 1);
    // Every patch is a contiguous crop: rows grow down, columns grow right, one pixel a step.
    const ramp = arange(0, g.patch, 1, 'float32');
    assert.ok(rows.sub(rows.narrow(2, 0, 1).narrow(3, 0, 1)).equal(ramp.view([1, 1, g.patch, 1]).expand(rows.shape)));
    assert.ok(cols.sub(cols.narrow(2, 0, 1).narrow(3, 0, 1)).equal(ramp.view([1, 1, 1, g.patch]).expand(cols.shape)));
    const top = rows.select(2, 0).select(2, 0).toArray(); // N x 2 corners, center first
    const left = cols.select(2, 0).select(2, 0).toArray();
    for (let i = 0; i < n; i++) {
      const dy = top[2 * i + 1] - top[2 * i];
      const dx = left[2 * i + 1] - left[2 * i];
      // The offset in whole grid cells (jitter is far below half a cell) is the label's direction.
      // (+ 0 turns -0 into 0.)
      assert.deepEqual(
        [Math.round(dy / stride) + 0, Math.round(dx / stride) + 0],
        [...NEIGHBOURS[labels[i]]],
        `sample ${i}: ${POSITION_NAMES[labels[i]]}`,
      );
      assert.ok(
        Math.abs(dy - NEIGHBOURS[labels[i]][0] * stride) <= 2 * g.jitter &&
          Math.abs(dx - NEIGHBOURS[labels[i]][1] * stride) <= 2 * g.jitter,
      );
      // The gap: patches never touch or overlap along the axis they are neighbours on.
      if (NEIGHBOURS[labels[i]][0] !== 0) assert.ok(Math.abs(dy) >= g.patch + g.gap - 2 * g.jitter);
      if (NEIGHBOURS[labels[i]][1] !== 0) assert.ok(Math.abs(dx) >= g.patch + g.gap - 2 * g.jitter);
    }
  });
});

test('pairOffsets with jitter 0 puts the pair exactly one stride apart', () => {
  tidy(() => {
    const g = contextGeometry(64, { jitter: 0 });
    const labels = arange(0, 8, 1, 'int64');
    const { y, x } = pairOffsets(labels, g, new Generator(0));
    const dy = y.select(1, 1).sub(y.select(1, 0)).toArray();
    const dx = x.select(1, 1).sub(x.select(1, 0)).toArray();
    const stride = g.patch + g.gap;
    assert.deepEqual(
      dy.map((v, k) => [v, dx[k]]),
      NEIGHBOURS.map(([r, c]) => [r * stride, c * stride]),
    );
  });
});

test('colour dropping keeps exactly one original channel per patch, the others small noise', () => {
  tidy(() => {
    const patches = randn([50, 2, 3, 8, 8]);
    const { patches: dropped, kept } = dropColors(patches, new Generator(1), 0.01);
    const keptChannels = kept.toArray();
    assert.equal(new Set(keptChannels).size, 3);
    for (let i = 0; i < 100; i++) {
      const [n, t] = [Math.floor(i / 2), i % 2];
      const original = patches.select(0, n).select(0, t);
      const out = dropped.select(0, n).select(0, t);
      const same = [0, 1, 2].filter((c) => out.select(0, c).equal(original.select(0, c)));
      assert.deepEqual(same, [keptChannels[i]]);
      const keptStd = original.select(0, keptChannels[i]).std().item();
      for (const c of [0, 1, 2].filter((c) => c !== keptChannels[i])) {
        const noiseStd = out.select(0, c).std().item();
        assert.ok(noiseStd > 0.002 * keptStd && noiseStd < 0.03 * keptStd, `noise std ${noiseStd} vs kept ${keptStd}`);
      }
    }
  });
});

test('projection removes the green-magenta component and leaves gray pixels alone', () => {
  tidy(() => {
    const patches = randn([4, 2, 3, 5, 5]);
    const projected = projectOutGreenMagenta(patches);
    const along = (x: Tensor) => x.select(2, 1).mul(2).sub(x.select(2, 0)).sub(x.select(2, 2));
    assert.ok(along(projected).abs().max().item() < 1e-5);
    // What is orthogonal to [-1, 2, -1] is untouched: the gray axis and the red-blue axis.
    assert.ok(projected.sum(2).allclose(patches.sum(2), 1e-5, 1e-5));
    assert.ok(
      projected
        .select(2, 0)
        .sub(projected.select(2, 2))
        .allclose(patches.select(2, 0).sub(patches.select(2, 2)), 1e-5, 1e-5),
    );
    const gray = randn([4, 2, 1, 5, 5]).expand([4, 2, 3, 5, 5]);
    assert.ok(projectOutGreenMagenta(gray).allclose(gray, 1e-5, 1e-6));
  });
});

test('colour handling: drop and project change RGB patches; grayscale inputs pass through unchanged', () => {
  tidy(() => {
    const model = (colorHandling: string, channels: number) =>
      contextTask.create(new SmallAlexNet({ width: 8, inChannels: channels }), contextTask.options.parse({ colorHandling }), {
        inChannels: channels,
        imageSize: 64,
      });
    const rgb = batchOf(randn([6, 3, 64, 64]));
    const plain = model('none', 3).prepare(rgb, new Generator(5)).inputs;
    const dropped = model('drop', 3).prepare(rgb, new Generator(5)).inputs;
    const projected = model('project', 3).prepare(rgb, new Generator(5)).inputs;
    assert.equal(contextTask.options.parse({}).colorHandling, 'drop');
    // Same draws for the pair, so each drop-mode patch shares exactly one channel with the plain one.
    const identicalChannels = dropped.eq(plain).flatten(3).toDtype('int64').amin(3); // N x 2 x 3
    assert.ok(identicalChannels.sum(2).eq(1).all().item());
    assert.ok(projected.allclose(projectOutGreenMagenta(plain), 1e-5, 1e-6));
    const gray = batchOf(coordinateImage(6, 64, 1));
    for (const handling of ['drop', 'project', 'none']) {
      const a = model(handling, 1).prepare(gray, new Generator(9)).inputs;
      const b = model('none', 1).prepare(gray, new Generator(9)).inputs;
      assert.deepEqual(a.shape, [6, 2, 1, 15, 15]);
      assert.ok(a.equal(b), handling);
    }
  });
});

test('context picture: center and neighbour side by side, the position as caption, answers marked', () => {
  tidy(() => {
    const instance = contextTask.create(new SmallAlexNet({ width: 8 }), contextTask.options.parse({}), { inChannels: 3, imageSize: 64 });
    const prepared = instance.prepare(batchOf(randn([3, 3, 64, 64])), new Generator(2));
    const targets = prepared.targets.toArray();
    const answers = targets.map((target, i) => ({ target, predicted: i === 0 ? (target + 1) % 8 : target, correct: i !== 0 }));
    const picture = contextTask.picture(prepared, answers, (x) => x.sigmoid());
    assert.deepEqual(picture.panels.shape, [6, 3, 15, 15]);
    assert.equal(picture.columns % 2, 0);
    assert.equal(picture.captions[0], 'center');
    assert.equal(picture.captions[2], 'center');
    assert.equal(picture.captions[1], `${POSITION_NAMES[targets[0]]} → ${POSITION_NAMES[(targets[0] + 1) % 8]} ✗`);
    assert.equal(picture.captions[3], `${POSITION_NAMES[targets[1]]} → ${POSITION_NAMES[targets[1]]} ✓`);
    assert.ok(picture.panels.select(0, 1).equal(prepared.inputs.select(0, 0).select(0, 1).sigmoid()));
  });
});
