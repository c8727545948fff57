import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromTypedArray, Generator, manualSeed, noGrad, optim, setNumThreads, tensor, tidy, zeros, type Tensor } from '@pretext/torch';
import type { Batch } from '../../src/data/loader.js';
import type { SampleStore } from '../../src/data/store.js';
import { Rng } from '../../src/util/random.js';
import { SmallAlexNet } from '../../src/models/alexnet.js';
import {
  balancedAccuracy,
  clipTimelines,
  frameOrderTask,
  sampleTuples,
  tupleLabels,
  type FrameOrderOptions,
} from '../../src/tasks/frame-order.js';
import type { TaskInstance } from '../../src/tasks/task.js';
import { clipStore, FPS, FRAMES, numberedClips, SIZE, STILL } from './clip-store.js';

setNumThreads(1);

const allIndices = (store: SampleStore) => Int32Array.from({ length: store.n }, (_, i) => i);
const optionsOf = (o: Partial<FrameOrderOptions> = {}): FrameOrderOptions => frameOrderTask.options.parse(o);

function instanceFor(store: SampleStore, o: Partial<FrameOrderOptions> = {}): TaskInstance {
  return frameOrderTask.create(new SmallAlexNet({ width: 8 }), optionsOf({ frameFeatures: 32, hidden: 32, ...o }), {
    inChannels: 3,
    imageSize: SIZE,
    store,
  });
}

/** The loader's batch of some store indices: images scaled to about [-0.5, 0.5]. */
function batchOf(store: SampleStore, indices: Int32Array): Batch {
  const bytes = SIZE * SIZE * 3;
  const pixels = new Uint8Array(indices.length * bytes);
  indices.forEach((i, k) => pixels.set(store.images.subarray(i * bytes, (i + 1) * bytes), k * bytes));
  const images = fromTypedArray(pixels, [indices.length, SIZE, SIZE, 3]).permute([0, 3, 1, 2]).float().div(255).sub(0.5).contiguous();
  return { images, labels: zeros([indices.length], 'int64'), indices: tensor(Array.from(indices)), index: 0 };
}

/** The task's tuples of an epoch (it always samples its own order). */
function orderOf(instance: TaskInstance, epoch: number, indices: Int32Array): Int32Array {
  const order = instance.epochOrder?.(epoch, indices);
  assert.ok(order, 'frame-order returns an epoch order');
  return order;
}

const clipOf = (i: number) => Math.floor(i / FRAMES);
const timeOf = (i: number) => i % FRAMES;

test('tuples: one clip each, positives in order either way across a window, negatives with a frame outside it', () => {
  const store = clipStore(numberedClips(8));
  const span = Math.round(optionsOf().windowSeconds * FPS);
  const gap = Math.round(optionsOf().gapSeconds * FPS);
  const order = orderOf(instanceFor(store), 0, allIndices(store));
  assert.equal(order.length, 3 * store.n, 'as many tuples as frames');
  let [positives, backwards] = [0, 0];
  for (let k = 0; k < order.length; k += 3) {
    const [a, m, b] = order.subarray(k, k + 3);
    assert.ok(clipOf(a) === clipOf(m) && clipOf(m) === clipOf(b), `tuple ${a} ${m} ${b} crosses clips`);
    const [lo, hi] = [Math.min(timeOf(a), timeOf(b)), Math.max(timeOf(a), timeOf(b))];
    assert.equal(hi - lo, span, 'the ends are the window');
    // High motion: no window lies in the still part (its motion is 0, below every moving window).
    assert.ok(hi > STILL, `window ${lo}..${hi} is still`);
    const t = timeOf(m);
    if (t > lo && t < hi) positives++;
    else assert.ok(t <= lo - gap || t >= hi + gap, `negative middle ${t} within ${gap} of window ${lo}..${hi}`);
    if (a > b) backwards++;
  }
  const tuples = order.length / 3;
  assert.ok(Math.abs(positives / tuples - 0.25) < 0.05, `${positives} of ${tuples} in order`);
  assert.ok(Math.abs(backwards / tuples - 0.5) < 0.06, `${backwards} of ${tuples} backwards`);
});

test('tuples: the positive fraction option, the same order for the same epoch, a fresh one for the next', () => {
  const store = clipStore(numberedClips(6));
  const indices = allIndices(store);
  const timelines = clipTimelines(store, indices, optionsOf());
  const labels = (o: Int32Array) => tidy(() => tupleLabels(tensor(Array.from(o))).toArray());
  const share = (fraction: number) => {
    const l = labels(sampleTuples(timelines, 2000, fraction, new Rng(1)));
    return l.reduce((a, b) => a + b, 0) / l.length;
  };
  for (const fraction of [0.1, 0.5, 0.75]) assert.ok(Math.abs(share(fraction) - fraction) < 0.04, `${fraction}: ${share(fraction)}`);
  const instance = instanceFor(store);
  const again = instanceFor(store);
  assert.deepEqual(orderOf(instance, 3, indices), orderOf(again, 3, indices));
  assert.notDeepEqual(orderOf(instance, 3, indices), orderOf(instance, 4, indices));
  assert.notDeepEqual(orderOf(instance, 3, indices), orderOf(instanceFor(store, { seed: 1 }), 3, indices));
});

test('tuples use only the given frames and leave out held-out clips', () => {
  const store = clipStore(numberedClips(6));
  const kept = allIndices(store).filter((i) => i % 5 !== 0);
  const order = orderOf(instanceFor(store, { holdOut: 'clip[45]\\.avi$' }), 0, kept);
  assert.equal(order.length, 3 * kept.length);
  const keptSet = new Set(kept);
  assert.ok(
    order.every((i) => keptSet.has(i)),
    'a frame outside the run subset',
  );
  assert.ok(
    order.every((i) => clipOf(i) < 4),
    'a held-out clip was sampled',
  );
  assert.throws(() => orderOf(instanceFor({ ...store, clips: undefined }), 0, kept), /pretext ingest <folder> --video/);
  assert.throws(() => orderOf(instanceFor(store, { windowSeconds: 10 }), 0, kept), /no clip has room/);
});

test('prepare: labels follow the tuple, inputs are the three frames in batch order', () => {
  const store = clipStore(numberedClips(4));
  const instance = instanceFor(store);
  tidy(() => {
    // In order forwards and backwards; shuffled with the odd frame before, after, and reversed.
    const tuples = Int32Array.from([10, 12, 14, 14, 12, 10, 10, 3, 14, 14, 20, 10, 31, 30, 35, 35, 40, 31]);
    const batch = batchOf(store, tuples);
    const prepared = instance.prepare(batch, new Generator(0));
    assert.deepEqual(prepared.targets.toArray(), [1, 1, 0, 0, 0, 0]);
    assert.deepEqual(prepared.inputs.shape, [6, 3, 3, SIZE, SIZE]);
    assert.ok(prepared.inputs.select(1, 2).select(0, 3).equal(batch.images.select(0, 11)));
    // The sampler's tuples: targets agree with the sampler's choices at the extremes.
    const timelines = clipTimelines(store, allIndices(store), optionsOf());
    for (const [fraction, label] of [
      [0.999, 1],
      [0.001, 0],
    ]) {
      const order = sampleTuples(timelines, 30, fraction, new Rng(2));
      const targets = instance.prepare(batchOf(store, order), new Generator(0)).targets.toArray();
      assert.ok(
        targets.every((t) => t === label),
        `fraction ${fraction}: ${targets.join('')}`,
      );
    }
    assert.throws(() => instance.prepare(batchOf(store, Int32Array.from([1, 2])), new Generator(0)), /tuples of 3 frames/);
  });
});

test('balanced accuracy: 0.5 for a constant answer whatever the ratio, 1 for a perfect one', () => {
  tidy(() => {
    const targets = tensor([1, 0, 0, 0]);
    const sayNo = tensor([
      [1, 0],
      [1, 0],
      [1, 0],
      [1, 0],
    ]).float();
    assert.equal(balancedAccuracy(sayNo, targets).item(), 0.5);
    assert.equal(balancedAccuracy(sayNo.flip([1]), targets).item(), 0.5);
    assert.equal(balancedAccuracy(tensor([0, 1, 1, 1]).oneHot(2).float().neg(), targets).item(), 1);
  });
});

/** Loss and balanced accuracy of the model on prepared tuples, in eval mode. */
function score(instance: TaskInstance, prepared: { inputs: Tensor; targets: Tensor }) {
  for (const m of Object.values(instance.modules)) m.eval();
  const result = noGrad(() => tidy(() => instance.step(prepared, 'main')));
  const out = { loss: result.loss.item(), balanced: (result.metrics.balancedAcc as Tensor).item() };
  for (const m of Object.values(instance.modules)) m.train();
  return out;
}

test('frame-order smoke: SGD steps on moving-square clips lower the loss on unseen tuples', (t) => {
  const store = clipStore(numberedClips(8));
  manualSeed(0);
  const instance = instanceFor(store, { positiveFraction: 0.5 });
  const [phase] = instance.phases();
  const optimizer = new optim.Adam(phase.parameters, { lr: 2e-3 });
  const held = instance.prepare(batchOf(store, orderOf(instance, 99, allIndices(store)).subarray(0, 3 * 96)), new Generator(0));
  const before = score(instance, held);
  const batchSize = 24;
  for (let epoch = 0; epoch < 10; epoch++) {
    const order = orderOf(instance, epoch, allIndices(store));
    for (let start = 0; start + 3 * batchSize <= order.length; start += 3 * batchSize) {
      tidy(() => {
        const prepared = instance.prepare(batchOf(store, order.subarray(start, start + 3 * batchSize)), new Generator(0));
        optimizer.zeroGrad();
        instance.step(prepared, phase.name).loss.backward();
        optimizer.step();
      });
    }
  }
  const after = score(instance, held);
  t.diagnostic(
    `held-out tuples: loss ${before.loss.toFixed(3)} -> ${after.loss.toFixed(3)}, balanced acc ${before.balanced.toFixed(2)} -> ${after.balanced.toFixed(2)}`,
  );
  assert.ok(after.loss < before.loss - 0.1, `loss ${before.loss} -> ${after.loss}`);
});

test('picture: three frames a row, each with its place in time, the truth and the answer mark', () => {
  const store = clipStore(numberedClips(2));
  const instance = instanceFor(store);
  tidy(() => {
    const prepared = instance.prepare(batchOf(store, Int32Array.from([14, 12, 10, 10, 3, 14])), new Generator(0));
    const answers = [
      { target: 1, predicted: 1, correct: true },
      { target: 0, predicted: 1, correct: false },
    ];
    const picture = frameOrderTask.picture(prepared, answers, (images) => images.add(0.5));
    assert.equal(picture.columns, 3);
    assert.deepEqual(picture.panels.shape, [6, 3, SIZE, SIZE]);
    assert.deepEqual(picture.captions, ['3', '2 · in order', '1 → in order ✓', '2', '1 · shuffled', '3 → in order ✗']);
  });
});
