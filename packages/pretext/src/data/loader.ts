// Batches from a SampleStore: a seeded per-epoch permutation, sharded across data-parallel ranks,
// built (gather -> tensor -> augment -> normalize) ahead of the consumer in worker threads.
//
// Determinism: the epoch's permutation depends on (seed, epoch) only, so that the ranks' shards are
// disjoint; a batch's augmentation draws come from a Generator seeded with a hash of (seed, epoch,
// batch index, rank, worldSize). A batch is therefore a pure function of those, whatever the prefetch
// depth, the number of workers or the batch a resumed epoch starts at. Workers all run one libtorch
// thread; the main-thread mode (`workers: 0`) can differ from them in the last float bit where an op
// reduces in parallel.
//
// Last batch: `dropLast` defaults to true when shuffling (every batch full, every rank the same number
// of batches) and false otherwise (evaluation sees every sample; the last batch may be short).
//
// Sharding: rank r of W takes positions r, r + W, r + 2W, ... of the epoch's permutation. With dropLast
// every rank takes floor(M / W / batchSize) full batches; without it the shards cover all M samples,
// their sizes differ by at most one, and so may their batch counts (a data-parallel trainer that needs
// equal step counts should keep dropLast on).
//
// Prefetch: batches are built in worker threads (default 1), each loading its own copy of the addon
// and running libtorch with one intra-op thread. The main thread only gathers the rows (a memcpy per
// sample), posts them (transferred) and wraps the returned float32 bytes (one copy), about 0.5 ms per
// batch of 256 x 3 x 32 x 32; up to `prefetch` batches are in flight ahead of the consumer, and
// results are matched to batch indices, so the order never depends on which worker answers first.
// `workers: 0` builds each batch on the main thread when it is asked for (prefetch unused).
//
// Measurements (2-core build machine, which other jobs kept 100% busy at load 6-9 throughout, so
// the wall-clock numbers are pessimistic and noisy; 32x32 synthetic store, batch 256, randomResizedCrop
// + flip + colorJitter(0.4, 0.4, 0.4, 0.1, p 0.8) + grayscale(0.2) + blur(p 0.5)):
// - building one batch costs 6.8 ms of CPU on one thread: about 37,000 images/s per free core;
// - loader alone (measureLoaderThroughput): 1 worker 13,400-15,000 img/s (27,000-29,000 in a lighter
//   moment); 2 workers 10,400-13,700 (33,000-35,000); main thread at 1 libtorch thread 12,000-19,500;
//   main thread at 2 libtorch threads 600-4,500 (OpenMP's two threads collapse when the cores are
//   oversubscribed: a small op waits for the preempted one);
// - with a light training step (two convs, 100-190 ms alone at 2 threads, 19-25 ms at 1): at 2 trainer
//   threads the loader on the main thread made a step 139-469 ms, one worker 112-217 ms; at 1 trainer
//   thread (and no idle core to run the worker on) 30-45 ms against 32-52 ms.
// The worker keeps the main thread free and wins wherever the trainer uses more than one thread; on
// an idle second core it also overlaps a one-thread trainer. Hence one worker by default.
import { Worker } from 'node:worker_threads';
import * as torch from '@pretext/torch';
import type { Tensor } from '@pretext/torch';
import { z } from 'zod';
import { parseAugmentSpec, prepareImages, type AugmentSpec, type ImageRecipe } from './augment.js';
import { ROLE, STOP, type WorkerJob, type WorkerReply, type WorkerSetup } from './loader-worker.js';
import { sampleBytes, sampleImage, type SampleStore } from './store.js';

/** The augmentations are part of the loader's public API. */
export * from './augment.js';

export interface Batch {
  /** float32 N x C x H x W, normalized. */
  images: Tensor;
  /** int64 N class indices (-1 where unlabeled). */
  labels: Tensor;
  /** int64 N sample indices into the store. */
  indices: Tensor;
  /** Batch index within the epoch. */
  index: number;
}

export interface LoaderOptions {
  batchSize: number;
  /** Default true. */
  shuffle?: boolean;
  /** Default 0. */
  seed?: number;
  /** Default: true when shuffling, else false (see the policy above). */
  dropLast?: boolean;
  /** Data-parallel sharding: each rank sees a disjoint part of every epoch (default 0 of 1). */
  rank?: number;
  worldSize?: number;
  /** Batched augmentations; none by default. */
  augment?: AugmentSpec;
  /** Default 'dataset': per-channel mean/std of the whole store (computed once per store object). */
  normalize?: { mean: number[]; std: number[] } | 'dataset' | 'none';
  /** Batches prepared ahead of the consumer (default 2). */
  prefetch?: number;
  /** Only these samples of the store. */
  indices?: Int32Array;
  /** Output H = W (default: the store's height, which must then equal its width). */
  outputSize?: number;
  /** Output channels: the store's (default) or 3, repeating a grayscale store into RGB. */
  channels?: 1 | 3;
  /** Worker threads that build batches (default 1); 0 builds them on the main thread when asked for. */
  workers?: number;
}

const optionsSchema = z.strictObject({
  batchSize: z.number().int().positive(),
  shuffle: z.boolean().default(true),
  seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).default(0),
  dropLast: z.boolean().optional(),
  rank: z.number().int().nonnegative().default(0),
  worldSize: z.number().int().positive().default(1),
  augment: z.unknown().optional(),
  normalize: z
    .union([z.literal('dataset'), z.literal('none'), z.strictObject({ mean: z.array(z.number()), std: z.array(z.number().positive()) })])
    .default('dataset'),
  prefetch: z.number().int().nonnegative().default(2),
  indices: z.instanceof(Int32Array).optional(),
  outputSize: z.number().int().positive().optional(),
  channels: z.union([z.literal(1), z.literal(3)]).optional(),
  workers: z.number().int().nonnegative().default(1),
});

function parseOptions(options: LoaderOptions): z.output<typeof optionsSchema> {
  const result = optionsSchema.safeParse(options);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => `DataLoader option '${issue.path.join('.') || '(root)'}': ${issue.message}`);
  throw new Error(lines.join('\n'));
}

/** A batch of images outside a loader (dry steps, tests): sample indices 0..N-1, labels 0, batch 0. */
export function imageBatch(images: Tensor): Batch {
  const n = images.shape[0];
  return { images, labels: torch.zeros([n], 'int64'), indices: torch.arange(0, n, 1, 'int64'), index: 0 };
}

/** Disposes the tensors of a batch. */
export function disposeBatch(batch: Batch): void {
  batch.images.dispose();
  batch.labels.dispose();
  batch.indices.dispose();
}

// ---------------------------------------------------------------------------------------------
// Dataset statistics

export interface ChannelStats {
  mean: number[];
  std: number[];
}

const statsCache = new WeakMap<SampleStore, ChannelStats>();

/** Per-channel mean and (population) std of all pixels of a store, in [0, 1] units; cached per store object. */
export function datasetStats(store: SampleStore): ChannelStats {
  const cached = statsCache.get(store);
  if (cached) return cached;
  const c = store.channels;
  const pixelsPerChunk = Math.max(1, Math.floor((1 << 24) / c));
  const totals = torch.zeros([2, c], 'float64');
  for (let start = 0; start < store.images.length; start += pixelsPerChunk * c) {
    const chunk = store.images.subarray(start, Math.min(store.images.length, start + pixelsPerChunk * c));
    torch.tidy(() => {
      const x = torch.fromTypedArray(chunk, [chunk.length / c, c]).toDtype('float64');
      totals.add_(torch.stack([x.sum(0), x.square().sum(0)]));
    });
  }
  const [sums, squares] = [totals.select(0, 0).toArray(), totals.select(0, 1).toArray()];
  totals.dispose();
  const count = Math.max(1, store.images.length / c);
  const mean = sums.map((s) => s / count);
  const std = squares.map((s, i) => Math.sqrt(Math.max(0, s / count - mean[i] ** 2)));
  const stats = { mean: mean.map((m) => m / 255), std: std.map((s) => s / 255) };
  statsCache.set(store, stats);
  return stats;
}

/** Copies of the statistics, one entry repeated for every channel when there is one. */
function forChannels({ mean, std }: ChannelStats, channels: number): ChannelStats {
  const spread = (values: number[]) => (values.length === channels ? [...values] : Array<number>(channels).fill(values[0]));
  return { mean: spread(mean), std: spread(std) };
}

// ---------------------------------------------------------------------------------------------
// Seeds

function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hash32(parts: readonly number[], salt: number): number {
  let h = salt;
  for (const part of parts) {
    for (const word of [part >>> 0, Math.floor(part / 2 ** 32) >>> 0]) h = mix32((h ^ word) + 0x9e3779b9);
  }
  return h;
}

/** A 53-bit seed from non-negative integers (a Generator seed). */
export function hashSeed(...parts: number[]): number {
  return (hash32(parts, 0x243f6a88) >>> 11) * 2 ** 32 + hash32(parts, 0x85a308d3);
}

const PERMUTATION = 1;
const BATCH = 2;

/** Fisher-Yates permutation of 0..n-1 from a 32-bit counter-based generator. */
function permutation(n: number, seed: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  let state = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    state = (state + 0x9e3779b9) >>> 0;
    const j = Math.floor((mix32(state) / 2 ** 32) * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

// ---------------------------------------------------------------------------------------------
// Workers

/**
 * Worker threads building batches. Each is referenced (keeps the process alive) only while busy. They
 * are stopped by message, never terminate()d: terminating a worker inside a libtorch call aborts the
 * process (see the report on the engine), so close() raises a shared flag that makes them skip the
 * jobs still queued, then lets each one leave its event loop.
 */
class WorkerPool {
  readonly #slots: { worker: Worker; busy: number; exited: Promise<void> }[] = [];
  readonly #pending = new Map<number, { resolve: (images: ArrayBuffer) => void; reject: (e: Error) => void; slot: number }>();
  readonly #stopFlag = new Int32Array(new SharedArrayBuffer(4));
  #nextId = 0;
  #failure: Error | undefined;

  constructor(count: number, recipe: ImageRecipe) {
    const setup: WorkerSetup = { role: ROLE, recipe, stopFlag: this.#stopFlag };
    for (let i = 0; i < count; i++) {
      const worker = new Worker(new URL('./loader-worker.js', import.meta.url), { workerData: setup });
      worker.unref();
      worker.on('message', (reply: WorkerReply) => this.#settle(reply));
      worker.on('error', (error) => this.#fail(error));
      const exited = new Promise<void>((resolve) =>
        worker.once('exit', (code) => {
          this.#fail(new Error(`DataLoader worker exited with code ${code}`));
          resolve();
        }),
      );
      this.#slots.push({ worker, busy: 0, exited });
    }
  }

  /** Builds one batch in the least busy worker; `pixels` is transferred. */
  run(pixels: Uint8Array, n: number, seed: number): Promise<ArrayBuffer> {
    if (this.#failure) return Promise.reject(this.#failure);
    let slot = 0;
    for (let i = 1; i < this.#slots.length; i++) if (this.#slots[i].busy < this.#slots[slot].busy) slot = i;
    const target = this.#slots[slot];
    if (target.busy++ === 0) target.worker.ref();
    const id = this.#nextId++;
    const job: WorkerJob = { id, pixels: pixels.buffer as ArrayBuffer, n, seed };
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, slot });
      target.worker.postMessage(job, [job.pixels]);
    });
  }

  #settle(reply: WorkerReply): void {
    const entry = this.#pending.get(reply.id);
    if (!entry) return;
    this.#pending.delete(reply.id);
    const target = this.#slots[entry.slot];
    if (--target.busy === 0) target.worker.unref();
    if ('error' in reply) entry.reject(new Error(`DataLoader worker failed: ${reply.error}`));
    else entry.resolve(reply.images);
  }

  /** Every pending and later batch fails with `error` (a worker died, or the pool closed). */
  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    for (const entry of this.#pending.values()) entry.reject(error);
    this.#pending.clear();
  }

  async close(): Promise<void> {
    this.#fail(new Error('DataLoader is closed'));
    Atomics.store(this.#stopFlag, 0, 1);
    for (const { worker } of this.#slots) {
      worker.ref(); // until it has left libtorch and exited
      worker.postMessage(STOP);
    }
    await Promise.all(this.#slots.map((s) => s.exited));
  }
}

// ---------------------------------------------------------------------------------------------
// Loader

/** Built images of one batch: a tensor (main-thread mode) or float32 bytes from a worker. */
type Prepared = Tensor | ArrayBuffer;

export class DataLoader {
  readonly batchesPerEpoch: number;
  /** Samples this rank sees per epoch. */
  readonly numSamples: number;
  readonly #store: SampleStore;
  readonly #options: z.output<typeof optionsSchema>;
  readonly #recipe: ImageRecipe;
  #pool: WorkerPool | undefined;
  #generator: torch.Generator | undefined;
  #closed = false;

  constructor(store: SampleStore, options: LoaderOptions) {
    const o = parseOptions(options);
    this.#store = store;
    this.#options = o;
    if (o.rank >= o.worldSize) throw new RangeError(`DataLoader option 'rank' must be below worldSize ${o.worldSize}, got ${o.rank}`);
    if (o.indices) {
      const bad = o.indices.findIndex((i) => i < 0 || i >= store.n);
      if (bad >= 0)
        throw new RangeError(`DataLoader option 'indices'[${bad}] = ${o.indices[bad]} is outside the store's 0..${store.n - 1}`);
    }
    const dropLast = o.dropLast ?? o.shuffle;
    const total = o.indices?.length ?? store.n;
    const perRank = dropLast ? Math.floor(total / o.worldSize) : Math.max(0, Math.ceil((total - o.rank) / o.worldSize));
    this.batchesPerEpoch = dropLast ? Math.floor(perRank / o.batchSize) : Math.ceil(perRank / o.batchSize);
    this.numSamples = dropLast ? this.batchesPerEpoch * o.batchSize : perRank;

    if (o.outputSize === undefined && store.height !== store.width) {
      throw new RangeError(`DataLoader: the store's images are ${store.height} x ${store.width}; give 'outputSize'`);
    }
    const channels = o.channels ?? store.channels;
    if (channels < store.channels)
      throw new RangeError(`DataLoader option 'channels' cannot reduce a ${store.channels}-channel store to ${channels}`);
    this.#recipe = {
      height: store.height,
      width: store.width,
      storeChannels: store.channels,
      channels,
      outputSize: o.outputSize ?? store.height,
      augment: o.augment === undefined ? undefined : parseAugmentSpec(o.augment),
      normalize: this.#normalization(channels),
    };
  }

  /** Explicit statistics with one entry (a grayscale store's) apply to every output channel. */
  #normalization(channels: number): ImageRecipe['normalize'] {
    const n = this.#options.normalize;
    if (n === 'none') return undefined;
    const { mean, std } = n === 'dataset' ? datasetStats(this.#store) : n;
    if (mean.length !== std.length || (mean.length !== channels && mean.length !== 1)) {
      throw new RangeError(`DataLoader option 'normalize' needs ${channels} (or 1) means and stds, got ${mean.length} and ${std.length}`);
    }
    return forChannels({ mean, std }, channels);
  }

  /** Per-channel mean/std of the store's pixels in [0, 1] units, for the output channels. */
  stats(): ChannelStats {
    return forChannels(datasetStats(this.#store), this.#recipe.channels);
  }

  /** Store indices this rank sees in `epoch`, in order. */
  epochIndices(epoch: number): Int32Array {
    const { shuffle, seed, rank, worldSize, indices: subset } = this.#options;
    const total = subset?.length ?? this.#store.n;
    const order = shuffle ? permutation(total, hashSeed(PERMUTATION, seed, epoch)) : undefined;
    const out = new Int32Array(this.numSamples);
    for (let k = 0; k < out.length; k++) {
      const position = order ? order[rank + k * worldSize] : rank + k * worldSize;
      out[k] = subset ? subset[position] : position;
    }
    return out;
  }

  /** Full batches in an explicit epoch order (see epoch()). */
  batchesIn(order: Int32Array): number {
    return Math.floor(order.length / this.#options.batchSize);
  }

  /**
   * The batches of `epoch` from `startBatch` on; the consumer disposes each (disposeBatch). `order`
   * replaces the epoch's shuffled indices by the caller's (store indices, for this rank; a task's
   * sampler): consecutive slices of it become the batches, the last partial one dropped.
   */
  epoch(epoch: number, startBatch = 0, order?: Int32Array): AsyncIterableIterator<Batch> {
    if (!Number.isSafeInteger(epoch) || epoch < 0)
      throw new RangeError(`DataLoader.epoch: 'epoch' must be a non-negative integer, got ${epoch}`);
    const batches = order ? this.batchesIn(order) : this.batchesPerEpoch;
    if (!Number.isInteger(startBatch) || startBatch < 0 || startBatch > batches) {
      throw new RangeError(`DataLoader.epoch: 'startBatch' must be an integer in 0..${batches}, got ${startBatch}`);
    }
    if (order) {
      const bad = order.findIndex((i) => i < 0 || i >= this.#store.n);
      if (bad >= 0) throw new RangeError(`DataLoader.epoch: order[${bad}] = ${order[bad]} is outside the store's 0..${this.#store.n - 1}`);
    }
    if (this.#closed) throw new Error('DataLoader is closed');
    return this.#batches(epoch, startBatch, order ?? this.epochIndices(epoch), batches);
  }

  async *#batches(epoch: number, startBatch: number, order: Int32Array, batches: number): AsyncIterableIterator<Batch> {
    const { batchSize, prefetch } = this.#options;
    const members = (b: number) => order.subarray(b * batchSize, Math.min(order.length, (b + 1) * batchSize));
    const pending = new Map<number, Promise<Prepared>>();
    const request = (b: number) => {
      if (b >= batches || pending.has(b) || !this.#pool) return;
      const job = this.#pool.run(this.#gather(members(b)), members(b).length, this.#batchSeed(epoch, b));
      job.catch(() => {}); // observed when awaited; abandoned prefetches must not be unhandled rejections
      pending.set(b, job);
    };
    if (this.#options.workers > 0) this.#pool ??= new WorkerPool(this.#options.workers, this.#recipe);
    for (let b = startBatch; b < batches; b++) {
      if (this.#closed) throw new Error('DataLoader is closed');
      for (let ahead = b; ahead <= b + prefetch; ahead++) request(ahead);
      const prepared = pending.get(b) ?? this.#prepareHere(members(b), this.#batchSeed(epoch, b));
      pending.delete(b);
      yield this.#batch(members(b), await prepared, b);
    }
  }

  #batchSeed(epoch: number, batch: number): number {
    const { seed, rank, worldSize } = this.#options;
    return hashSeed(BATCH, seed, epoch, batch, rank, worldSize);
  }

  /** The stored pixels of the given samples, back to back, in a fresh buffer. */
  #gather(indices: Int32Array): Uint8Array {
    const bytes = sampleBytes(this.#store);
    const out = new Uint8Array(indices.length * bytes);
    indices.forEach((index, k) => out.set(sampleImage(this.#store, index), k * bytes));
    return out;
  }

  #prepareHere(indices: Int32Array, seed: number): Tensor {
    this.#generator ??= new torch.Generator();
    this.#generator.manualSeed(seed);
    return prepareImages(this.#gather(indices), indices.length, this.#recipe, this.#generator);
  }

  /** The consumer owns the tensors: they are kept out of any tidy() scope open while iterating. */
  #batch(indices: Int32Array, prepared: Prepared, index: number): Batch {
    const n = indices.length;
    const { channels, outputSize } = this.#recipe;
    const images =
      prepared instanceof ArrayBuffer ? torch.fromTypedArray(new Float32Array(prepared), [n, channels, outputSize, outputSize]) : prepared;
    const labels = BigInt64Array.from(indices, (i) => BigInt(this.#store.labels[i]));
    return {
      images: torch.keep(images),
      labels: torch.keep(torch.fromTypedArray(labels)),
      indices: torch.keep(torch.fromTypedArray(BigInt64Array.from(indices, BigInt))),
      index,
    };
  }

  /** Stops the workers; further epochs throw. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool?.close();
  }
}

/**
 * Images per second that a loader delivers over `batches` batches (continuing into later epochs as
 * needed), not counting a first warm-up batch; the batches are disposed as a trainer would.
 */
export async function measureLoaderThroughput(store: SampleStore, options: LoaderOptions, batches: number): Promise<number> {
  const loader = new DataLoader(store, options);
  if (loader.batchesPerEpoch === 0) throw new RangeError('measureLoaderThroughput: the loader yields no batches');
  try {
    let images = 0;
    let done = -1;
    let start = 0;
    for (let epoch = 0; done < batches; epoch++) {
      for await (const batch of loader.epoch(epoch)) {
        if (done >= 0) images += batch.images.shape[0];
        else start = performance.now();
        disposeBatch(batch);
        if (++done >= batches) break;
      }
    }
    return images / ((performance.now() - start) / 1000);
  } finally {
    await loader.close();
  }
}
