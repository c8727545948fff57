import assert from 'node:assert/strict';
import { test } from 'node:test';
import { arange, fromTypedArray, Generator, nn, setNumThreads, tensor, tidy, type Tensor } from '@pretext/torch';
import type { Batch } from '../../src/data/loader.js';
import type { SampleStore } from '../../src/data/store.js';
import { SmallAlexNet } from '../../src/models/alexnet.js';
import { deepclusterTask, sobelFilter, uniformOverClusters } from '../../src/tasks/deepcluster.js';
import type { EpochContext, TaskInstance } from '../../src/tasks/task.js';
import { ALONE } from '../../src/util/shards.js';

setNumThreads(1);

const SIDE = 16;

/** 66 gray 16 x 16 images of three patterns (vertical stripes, horizontal stripes, checkerboard) with noise. */
function patternStore(): SampleStore {
  const n = 66;
  const images = new Uint8Array(n * SIDE * SIDE * 3);
  const labels = new Int32Array(n);
  let state = 7;
  const noise = () => ((state = (state * 1103515245 + 12345) >>> 0) >>> 24) % 40;
  for (let i = 0; i < n; i++) {
    const label = i % 3;
    labels[i] = label;
    for (let y = 0; y < SIDE; y++) {
      for (let x = 0; x < SIDE; x++) {
        const on = label === 0 ? (x >> 1) % 2 : label === 1 ? (y >> 1) % 2 : ((x >> 2) + (y >> 2)) % 2;
        const value = on * 200 + noise();
        images.fill(value, ((i * SIDE + y) * SIDE + x) * 3, ((i * SIDE + y) * SIDE + x) * 3 + 3);
      }
    }
  }
  return { images, n, height: SIDE, width: SIDE, channels: 3, labels, classNames: ['v', 'h', 'c'], paths: [] };
}

/** A batch of these store samples, scaled to about zero mean and unit variance. */
function batchOf(store: SampleStore, indices: Int32Array, index = 0): Batch {
  return tidy(() => {
    const rows = fromTypedArray(indices).long();
    const all = fromTypedArray(store.images, [store.n, SIDE, SIDE, 3]).permute([0, 3, 1, 2]).float().div(255).sub(0.5).div(0.3);
    return { images: all.index(rows), labels: fromTypedArray(store.labels).long().index(rows), indices: rows, index };
  });
}

interface FakeContext {
  context: EpochContext;
  records: Record<string, number>[];
  resets: nn.Parameter[][];
  passes: () => number;
}

function fakeContext(store: SampleStore, indices: Int32Array, epoch: number, resumed = false): FakeContext {
  const records: Record<string, number>[] = [];
  const resets: nn.Parameter[][] = [];
  let passes = 0;
  const context: EpochContext = {
    epoch,
    store,
    indices,
    resumed,
    log: () => {},
    async *batches(options) {
      passes++;
      const size = options?.batchSize ?? 16;
      for (let start = 0; start < indices.length; start += size) yield batchOf(store, indices.subarray(start, start + size), start / size);
    },
    gatherRows: async (rows) => rows.clone(),
    shards: ALONE,
    resetOptimizerState: (parameters) => resets.push(parameters),
    record: (metrics) => records.push(metrics),
  };
  return { context, records, resets, passes: () => passes };
}

const K = 4;
// Store indices 6..65: the lookup must go by store index, not by position.
const INDICES = Int32Array.from({ length: 60 }, (_, i) => i + 6);

function makeTask(): TaskInstance {
  const options = deepclusterTask.options.parse({ k: K, featureBatchSize: 16 });
  const backbone = new SmallAlexNet({ width: 8, inChannels: deepclusterTask.inputChannels!(3, options) });
  return deepclusterTask.create(backbone, options, { inChannels: 3, imageSize: SIDE });
}

/** Pseudo-labels of the given store indices, as prepare() looks them up. */
const targetsOf = (task: TaskInstance, store: SampleStore, indices: Int32Array) =>
  tidy(() => task.prepare(batchOf(store, indices), new Generator(0)).targets.toArray());

/** How many times each cluster's samples appear in an epoch order. */
function clusterCounts(order: Int32Array, task: TaskInstance, store: SampleStore): number[] {
  const labels = targetsOf(task, store, order);
  return Array.from({ length: K }, (_, c) => labels.filter((l) => l === c).length);
}

test('sobelFilter: gray luma, then x and y gradients (a ramp along x has constant x response, zero y)', () => {
  tidy(() => {
    const ramp = arange(0, 8, 1, 'float32').view([1, 1, 1, 8]).expand([1, 3, 8, 8]);
    const out = sobelFilter(ramp);
    assert.deepEqual(out.shape, [1, 2, 8, 8]);
    const inner = out.narrow(2, 1, 6).narrow(3, 1, 6);
    // Cross-correlation with [[1,0,-1],[2,0,-2],[1,0,-1]] of f(x) = x gives (1+2+1)(x-1) - (1+2+1)(x+1) = -8.
    assert.ok(inner.select(1, 0).allclose(tensor(-8).float().expand([1, 6, 6]), 1e-5, 1e-5));
    assert.ok(inner.select(1, 1).abs().max().item() < 1e-5);
  });
});

test('uniformOverClusters balances very unequal clusters, cycles members evenly, and is a pure function of its seed', () => {
  tidy(() => {
    const m = 100;
    const indices = Int32Array.from({ length: m }, (_, i) => 1000 + i);
    // Clusters of 90, 9 and 1 members; cluster 3 is empty.
    const labels = tensor(Array.from({ length: m }, (_, i) => (i < 90 ? 0 : i < 99 ? 1 : 2)));
    const order = uniformOverClusters(indices, labels, 4, 5);
    assert.equal(order.length, m);
    const clusterOf = (index: number) => (index - 1000 < 90 ? 0 : index - 1000 < 99 ? 1 : 2);
    const counts = [0, 0, 0];
    const uses = new Map<number, number>();
    for (const index of order) {
      assert.ok(index >= 1000 && index < 1000 + m);
      counts[clusterOf(index)]++;
      uses.set(index, (uses.get(index) ?? 0) + 1);
    }
    assert.ok(
      counts.every((c) => c === 33 || c === 34),
      `counts ${counts}`,
    );
    assert.equal(uses.get(1099), counts[2], 'the single member fills its cluster');
    const clusterOneUses = Array.from({ length: 9 }, (_, j) => uses.get(1090 + j) ?? 0);
    assert.ok(Math.max(...clusterOneUses) - Math.min(...clusterOneUses) <= 1, `uses ${clusterOneUses}`);
    assert.deepEqual(uniformOverClusters(indices, labels, 4, 5), order);
    assert.notDeepEqual(uniformOverClusters(indices, labels, 4, 6), order);
  });
});

test('onEpochStart clusters every training sample, records NMI and sizes, and re-initializes the head', async () => {
  const store = patternStore();
  const task = makeTask();
  const { backbone, head } = task.modules as { backbone: nn.Module; head: nn.Module & { fc: nn.Linear } };
  backbone.train();
  nn.init.constant_(head.fc.weight, 1);
  const first = fakeContext(store, INDICES, 0);
  await task.onEpochStart!(first.context);

  assert.equal(backbone.training, true, 'the backbone is back in training mode');
  const targets = targetsOf(task, store, INDICES);
  assert.ok(targets.every((t) => Number.isInteger(t) && t >= 0 && t < K));
  const [record] = first.records;
  assert.ok(
    record.clusterSizeMin >= 1 && record.clusterSizeMin <= record.clusterSizeMedian && record.clusterSizeMedian <= record.clusterSizeMax,
  );
  assert.ok(record.nmiLabels >= 0 && record.nmiLabels <= 1);
  assert.ok(record.inertia >= 0 && record.clusterSeconds > 0);
  assert.equal(record.nmiPrevious, undefined, 'no previous clustering at the first epoch');
  assert.deepEqual(first.resets, [head.parameters()]);
  const std = tidy(() => head.fc.weight.std().item());
  assert.ok(std > 0.005 && std < 0.02, `head weight std ${std}`);
  assert.equal(
    tidy(() => head.fc.bias!.abs().max().item()),
    0,
  );

  // The epoch's order: as many samples, uniform over the clusters.
  const order = task.epochOrder!(0, INDICES)!;
  assert.equal(order.length, INDICES.length);
  const counts = clusterCounts(order, task, store).filter((c) => c > 0);
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `counts ${counts}`);

  // Samples outside the clustered set get their nearest centroid: the same images under unknown
  // indices get exactly the clusters Lloyd's last assignment gave them; such samples get no order.
  const unknown = tidy(() => {
    const batch = batchOf(store, INDICES);
    return task.prepare({ ...batch, indices: batch.indices.add(1000) }, new Generator(0)).targets.toArray();
  });
  assert.deepEqual(unknown, targets);
  assert.equal(
    task.epochOrder!(
      0,
      Int32Array.from({ length: 66 }, (_, i) => i),
    ),
    undefined,
  );

  // The next epoch compares with this one.
  const second = fakeContext(store, INDICES, 1);
  await task.onEpochStart!(second.context);
  assert.ok(second.records[0].nmiPrevious >= 0 && second.records[0].nmiPrevious <= 1);

  // A resumed run re-entering epoch 1 keeps its clusters and extracts nothing.
  const before = targetsOf(task, store, INDICES);
  const resumed = fakeContext(store, INDICES, 1, true);
  await task.onEpochStart!(resumed.context);
  assert.equal(resumed.passes(), 0);
  assert.deepEqual(resumed.records, []);
  assert.deepEqual(targetsOf(task, store, INDICES), before);
});

test('task state round-trips: a restored task has the same pseudo-labels and epoch order, and skips clustering on resume', async () => {
  const store = patternStore();
  const task = makeTask();
  await task.onEpochStart!(fakeContext(store, INDICES, 3).context);
  const state = task.state!();
  assert.equal((state.json as { epoch: number }).epoch, 3);
  assert.equal(state.tensors!.assignments.dtype, 'int32');

  const restored = makeTask();
  restored.loadState!(state);
  assert.deepEqual(targetsOf(restored, store, INDICES), targetsOf(task, store, INDICES));
  assert.deepEqual(restored.epochOrder!(3, INDICES), task.epochOrder!(3, INDICES));
  const resumed = fakeContext(store, INDICES, 3, true);
  await restored.onEpochStart!(resumed.context);
  assert.equal(resumed.passes(), 0);
});

test('step: cross-entropy on the pseudo-labels trains backbone and head; Sobel sets the input channels', async () => {
  const store = patternStore();
  const task = makeTask();
  await task.onEpochStart!(fakeContext(store, INDICES, 0).context);
  tidy(() => {
    const prepared = task.prepare(batchOf(store, INDICES.subarray(0, 12)), new Generator(0));
    assert.deepEqual(prepared.inputs.shape, [12, 2, SIDE, SIDE]);
    const { loss, metrics } = task.step(prepared, 'main');
    assert.ok(Number.isFinite(loss.item()));
    const acc = (metrics.acc as Tensor).item();
    assert.ok(acc >= 0 && acc <= 1);
    loss.backward();
    const params = task.phases()[0].parameters;
    assert.ok(params.every((p) => p.grad !== undefined));
  });
  assert.equal(deepclusterTask.inputChannels!(3, deepclusterTask.options.parse({})), 2, 'Sobel by default, as the paper');
  assert.equal(deepclusterTask.inputChannels!(3, deepclusterTask.options.parse({ sobel: false })), 3);
  assert.throws(
    () => deepclusterTask.create(new SmallAlexNet({ width: 8 }), deepclusterTask.options.parse({}), { inChannels: 3, imageSize: SIDE }),
    /2 input channels/,
  );
});
