import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '@pretext/torch';
import { DataLoader, datasetStats, disposeBatch, measureLoaderThroughput, type Batch, type LoaderOptions } from '../../src/data/loader.js';
import type { SampleStore } from '../../src/data/store.js';
import { syntheticStore } from '../../src/data/synthetic/store.js';

torch.setNumThreads(1);

/**
 * n images of size x size whose pixels encode the sample: channel 0 holds the index, channel 1 the
 * index plus the column, channel 2 the row. Labels are index % 5, and -1 for every seventh sample.
 */
function indexStore(n = 50, size = 8, channels: 1 | 3 = 3): SampleStore {
  const images = new Uint8Array(n * size * size * channels);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const at = ((i * size + y) * size + x) * channels;
        images.set([i, i + x, y].slice(0, channels), at);
      }
    }
  }
  return {
    images,
    n,
    height: size,
    width: size,
    channels,
    labels: Int32Array.from({ length: n }, (_, i) => (i % 7 === 6 ? -1 : i % 5)),
    classNames: ['a', 'b', 'c', 'd', 'e'],
    paths: Array.from({ length: n }, (_, i) => `sample-${i}.png`),
  };
}

interface Collected {
  indices: number[][];
  labels: number[][];
  images: Float32Array[];
  batchIndices: number[];
  shapes: number[][];
}

/** Runs an epoch (or its tail) and keeps plain copies, disposing every batch. */
async function collect(loader: DataLoader, epoch: number, startBatch = 0): Promise<Collected> {
  const out: Collected = { indices: [], labels: [], images: [], batchIndices: [], shapes: [] };
  for await (const batch of loader.epoch(epoch, startBatch)) {
    out.indices.push(batch.indices.toArray());
    out.labels.push(batch.labels.toArray());
    out.images.push(batch.images.toTypedArray() as Float32Array);
    out.batchIndices.push(batch.index);
    out.shapes.push(batch.images.shape);
    disposeBatch(batch);
  }
  return out;
}

async function withLoader<T>(store: SampleStore, options: LoaderOptions, fn: (loader: DataLoader) => Promise<T>): Promise<T> {
  const loader = new DataLoader(store, options);
  try {
    return await fn(loader);
  } finally {
    await loader.close();
  }
}

const fullAugment = {
  randomResizedCrop: { scale: [0.2, 1] as [number, number] },
  horizontalFlip: 0.5,
  colorJitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1, p: 0.8 },
  grayscale: 0.2,
  gaussianBlur: { sigma: [0.1, 2] as [number, number], p: 0.5 },
};

test('batches have the documented shapes and dtypes, and images, labels and indices agree', async () => {
  const store = indexStore();
  await withLoader(store, { batchSize: 8, normalize: 'none', workers: 0 }, async (loader) => {
    for await (const batch of loader.epoch(0)) {
      assert.deepEqual(batch.images.shape, [8, 3, 8, 8]);
      assert.equal(batch.images.dtype, 'float32');
      assert.equal(batch.labels.dtype, 'int64');
      assert.equal(batch.indices.dtype, 'int64');
      const indices = batch.indices.toArray();
      assert.deepEqual(
        batch.labels.toArray(),
        indices.map((i) => store.labels[i]),
      );
      const pixel = batch.images.select(1, 0).select(1, 3).select(1, 5).mul(255).round().toArray();
      assert.deepEqual(pixel, indices);
      disposeBatch(batch);
    }
  });
});

test('the same seed gives identical batches; another seed or epoch another order; each epoch is a permutation', async () => {
  const store = indexStore();
  const options: LoaderOptions = { batchSize: 8, augment: fullAugment, seed: 3, dropLast: false };
  const [a, b] = await Promise.all([withLoader(store, options, (l) => collect(l, 0)), withLoader(store, options, (l) => collect(l, 0))]);
  assert.deepEqual(a.indices, b.indices);
  assert.deepEqual(a.images, b.images);
  const otherSeed = await withLoader(store, { ...options, seed: 4 }, (l) => collect(l, 0));
  const otherEpoch = await withLoader(store, options, (l) => collect(l, 1));
  assert.notDeepEqual(otherSeed.indices, a.indices);
  assert.notDeepEqual(otherEpoch.indices, a.indices);
  for (const run of [a, otherSeed, otherEpoch]) {
    assert.deepEqual(
      run.indices.flat().sort((x, y) => x - y),
      Array.from({ length: 50 }, (_, i) => i),
    );
  }
  const unshuffled = await withLoader(store, { batchSize: 8, shuffle: false }, (l) => collect(l, 5));
  assert.deepEqual(
    unshuffled.indices.flat(),
    Array.from({ length: 50 }, (_, i) => i),
  );
});

test('epoch(e, k) yields exactly batches k.. of epoch(e), whatever the prefetch depth and worker count', async () => {
  const store = indexStore();
  const options: LoaderOptions = { batchSize: 6, augment: fullAugment, seed: 9 };
  const full = await withLoader(store, { ...options, prefetch: 0, workers: 1 }, (l) => collect(l, 2));
  assert.equal(full.indices.length, 8);
  for (const [workers, prefetch] of [
    [1, 4],
    [2, 2],
  ]) {
    const resumed = await withLoader(store, { ...options, prefetch, workers }, (l) => collect(l, 2, 5));
    assert.deepEqual(resumed.batchIndices, [5, 6, 7]);
    assert.deepEqual(resumed.indices, full.indices.slice(5));
    assert.deepEqual(resumed.images, full.images.slice(5), `workers ${workers}, prefetch ${prefetch}`);
  }
  // The main-thread mode draws the same parameters (equal up to float rounding).
  const here = await withLoader(store, { ...options, workers: 0 }, (l) => collect(l, 2, 7));
  assert.deepEqual(here.indices, full.indices.slice(7));
  const maxDiff = Math.max(...here.images[0].map((v, i) => Math.abs(v - full.images[7][i])));
  assert.ok(maxDiff < 1e-4, `main thread differs from workers by ${maxDiff}`);
});

test('sharding: 3 ranks see disjoint shards that cover everything without dropLast, equal batch counts with it', async () => {
  const store = indexStore();
  const shards = await Promise.all(
    [0, 1, 2].map((rank) =>
      withLoader(store, { batchSize: 4, rank, worldSize: 3, dropLast: false, workers: 0, seed: 1 }, async (l) => ({
        seen: (await collect(l, 4)).indices.flat(),
        numSamples: l.numSamples,
      })),
    ),
  );
  const all = shards.flatMap((s) => s.seen);
  assert.equal(new Set(all).size, all.length, 'shards overlap');
  assert.deepEqual(
    all.sort((x, y) => x - y),
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.deepEqual(
    shards.map((s) => s.numSamples),
    [17, 17, 16],
  );
  const dropped = [0, 1, 2].map((rank) => new DataLoader(store, { batchSize: 4, rank, worldSize: 3 }));
  assert.deepEqual(
    dropped.map((l) => [l.batchesPerEpoch, l.numSamples]),
    [
      [4, 16],
      [4, 16],
      [4, 16],
    ],
  );
  const seen = dropped.flatMap((l) => [...l.epochIndices(0)]);
  assert.equal(new Set(seen).size, 48);
  assert.throws(() => new DataLoader(store, { batchSize: 4, rank: 3, worldSize: 3 }), /rank/);
});

test('last batch: dropped by default when shuffling, kept (short) by default otherwise', async () => {
  const store = indexStore();
  const sizes = async (options: LoaderOptions) =>
    withLoader(store, { ...options, workers: 0 }, async (l) => ({
      sizes: (await collect(l, 0)).indices.map((b) => b.length),
      batchesPerEpoch: l.batchesPerEpoch,
      numSamples: l.numSamples,
    }));
  assert.deepEqual(await sizes({ batchSize: 8 }), { sizes: [8, 8, 8, 8, 8, 8], batchesPerEpoch: 6, numSamples: 48 });
  assert.deepEqual(await sizes({ batchSize: 8, shuffle: false }), { sizes: [8, 8, 8, 8, 8, 8, 2], batchesPerEpoch: 7, numSamples: 50 });
  assert.deepEqual(await sizes({ batchSize: 8, dropLast: false }), { sizes: [8, 8, 8, 8, 8, 8, 2], batchesPerEpoch: 7, numSamples: 50 });
  assert.deepEqual(await sizes({ batchSize: 8, shuffle: false, dropLast: true }), {
    sizes: [8, 8, 8, 8, 8, 8],
    batchesPerEpoch: 6,
    numSamples: 48,
  });
});

test("normalize 'dataset' gives per-channel mean 0 and std 1 over an epoch; explicit and 'none' apply as given", async () => {
  const store = syntheticStore(40, 16, 5);
  const stats = datasetStats(store);
  assert.equal(datasetStats(store), stats, 'cached per store object');
  const images = await withLoader(store, { batchSize: 16, shuffle: false }, async (l) => {
    assert.deepEqual(l.stats(), stats);
    return (await collect(l, 0)).images;
  });
  torch.tidy(() => {
    const all = torch.cat(
      images.map((b) => torch.fromTypedArray(b, [b.length / (3 * 256), 3, 16, 16])),
      0,
    );
    for (const value of all.mean([0, 2, 3]).toArray()) assert.ok(Math.abs(value) < 1e-4, `mean ${value}`);
    for (const value of all.std([0, 2, 3], 0).toArray()) assert.ok(Math.abs(value - 1) < 1e-3, `std ${value}`);
  });
  const store8 = indexStore();
  const raw = await withLoader(store8, { batchSize: 50, shuffle: false, normalize: 'none' }, (l) => collect(l, 0));
  const explicit = await withLoader(
    store8,
    { batchSize: 50, shuffle: false, normalize: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.25, 1] } },
    (l) => collect(l, 0),
  );
  const stds = [0.5, 0.25, 1];
  explicit.images[0].forEach((v, i) => {
    const channel = Math.floor(i / 64) % 3;
    assert.ok(Math.abs(v - (raw.images[0][i] - 0.5) / stds[channel]) < 1e-5);
  });
  assert.throws(() => new DataLoader(store8, { batchSize: 4, normalize: { mean: [0.5, 0.5], std: [1, 1] } }), /normalize/);
});

test('subsets, grayscale stores, RGB expansion, output size and the synthetic store', async () => {
  const subset = Int32Array.from([3, 9, 27, 31, 44]);
  const picked = await withLoader(indexStore(), { batchSize: 2, indices: subset, dropLast: false, workers: 0 }, (l) => collect(l, 0));
  assert.deepEqual(
    picked.indices.flat().sort((x, y) => x - y),
    [...subset],
  );
  assert.throws(() => new DataLoader(indexStore(), { batchSize: 2, indices: Int32Array.from([50]) }), /indices/);

  const gray = indexStore(20, 8, 1);
  const mono = await withLoader(gray, { batchSize: 4, augment: fullAugment }, (l) => collect(l, 0));
  assert.deepEqual(mono.shapes[0], [4, 1, 8, 8]);
  const rgb = await withLoader(gray, { batchSize: 4, channels: 3, normalize: 'none', outputSize: 16 }, async (l) => {
    assert.equal(l.stats().mean.length, 3);
    return collect(l, 0);
  });
  assert.deepEqual(rgb.shapes[0], [4, 3, 16, 16]);
  const plane = 16 * 16;
  const first = rgb.images[0];
  assert.deepEqual(first.subarray(0, plane), first.subarray(plane, 2 * plane));
  assert.deepEqual(first.subarray(0, plane), first.subarray(2 * plane, 3 * plane));
  // One mean and std (a grayscale store's) apply to every expanded channel.
  const shifted = await withLoader(gray, { batchSize: 4, channels: 3, normalize: { mean: [0.5], std: [0.25] }, outputSize: 16 }, (l) =>
    collect(l, 0),
  );
  shifted.images[0].forEach((v, i) => assert.ok(Math.abs(v - (first[i] - 0.5) / 0.25) < 1e-5));

  const scenes = syntheticStore(24, 32, 1);
  const out = await withLoader(scenes, { batchSize: 8, augment: fullAugment, outputSize: 24, workers: 2 }, (l) => collect(l, 0));
  assert.deepEqual(out.shapes, [
    [8, 3, 24, 24],
    [8, 3, 24, 24],
    [8, 3, 24, 24],
  ]);
  assert.ok(out.images.every((b) => b.every(Number.isFinite)));
  assert.deepEqual(out.labels.flat(), Array(24).fill(-1));
});

test('bad options and closed loaders fail with errors naming the problem', async () => {
  const store = indexStore();
  assert.throws(() => new DataLoader(store, { batchSize: 0 }), /batchSize/);
  assert.throws(() => new DataLoader(store, { batchSize: 4, augment: { colorJitter: { hue: 1 } } }), /augment\.colorJitter\.hue/);
  assert.throws(
    () => new DataLoader({ ...store, width: 4, images: store.images.subarray(0, 50 * 8 * 4 * 3) }, { batchSize: 4 }),
    /outputSize/,
  );
  const loader = new DataLoader(store, { batchSize: 4 });
  assert.throws(() => loader.epoch(0, 99), /startBatch/);
  // Leaving an epoch early is fine; the next one starts cleanly.
  for await (const batch of loader.epoch(0)) {
    disposeBatch(batch);
    break;
  }
  const next = await loader.epoch(1).next();
  disposeBatch(next.value as Batch);
  await loader.close();
  assert.throws(() => loader.epoch(0), /closed/);
});

test('many epochs leave memory flat (every tensor freed), and throughput is measurable', async () => {
  const store = syntheticStore(64, 32, 2);
  // One 786 KB batch per epoch: leaking the batches (or a worker's intermediates) would grow RSS by
  // about 75 MiB in every window of 100 epochs. Heaps and malloc arenas settle over the first
  // hundreds of epochs, so the least growth of three windows is what is checked.
  for (const workers of [0, 1]) {
    await withLoader(store, { batchSize: 64, augment: fullAugment, workers }, async (loader) => {
      let epoch = 0;
      const run = async (epochs: number) => {
        for (const end = epoch + epochs; epoch < end; epoch++) for await (const batch of loader.epoch(epoch)) disposeBatch(batch);
      };
      await run(100);
      const growth: number[] = [];
      for (let window = 0; window < 3; window++) {
        const before = process.memoryUsage().rss;
        await run(100);
        growth.push((process.memoryUsage().rss - before) / 2 ** 20);
      }
      assert.ok(
        Math.min(...growth) < 20,
        `RSS grew by ${growth.map((g) => g.toFixed(1)).join(', ')} MiB per 100 epochs (workers=${workers})`,
      );
    });
  }
  const rate = await measureLoaderThroughput(store, { batchSize: 16, augment: fullAugment }, 4);
  assert.ok(rate > 0 && Number.isFinite(rate));
});
