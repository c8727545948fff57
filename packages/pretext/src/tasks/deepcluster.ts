// DeepCluster (Caron, Bojanowski, Joulin & Douze, ECCV 2018): at the start of every epoch, cluster
// the backbone's features of the whole training set with k-means and train the network to predict
// each image's cluster. Features: global average pool of the last block, in eval mode, PCA-whitened
// to `pcaDim` and L2-normalized; k-means++ then Lloyd (tasks/kmeans.ts). Epochs sample uniformly
// over clusters, and the linear head is re-initialized (its optimizer state cleared) at each
// reassignment, as the paper does. Optional Sobel input: grayscale, then fixed x/y Sobel filters.
import {
  arange,
  cat,
  conv2d,
  fromTypedArray,
  full,
  Generator,
  keep,
  nn,
  noGrad,
  randperm,
  tensor,
  tidy,
  where,
  type Tensor,
} from '@pretext/torch';
import { z } from 'zod';
import { luminance } from '../data/augment.js';
import { disposeBatch, type Batch } from '../data/loader.js';
import type { Backbone } from '../models/backbone.js';
import { PooledClassifier } from '../models/heads.js';
import { applyPca, fitPcaWhitening, kmeans, nearestCentroids, normalizedMutualInformation, type Pca } from './kmeans.js';
import { answerMark, ClassifierTask, type EpochContext, type PretextBatch, type PretextTask, type TaskState } from './task.js';

const options = z
  .object({
    /** Clusters. The paper used 10,000 on ImageNet (10x its classes); 100 here, 10x CIFAR-10's classes. */
    k: z.number().int().min(2).default(100),
    /** PCA components kept before whitening (paper: 256), capped at the feature width. */
    pcaDim: z.number().int().positive().default(256),
    /** Grayscale then fixed Sobel x/y filters as a 2-channel input (the paper's default for AlexNet). */
    sobel: z.boolean().default(true),
    /** k-means runs per epoch, keeping the lowest inertia (the paper: 1). */
    restarts: z.number().int().positive().default(1),
    /** Lloyd iterations (the paper's Faiss setting: 20). */
    iterations: z.number().int().positive().default(20),
    /** Stop k-means early when the inertia drops by no more than this fraction (0: only at a fixed point). */
    tolerance: z.number().min(0).default(0),
    /** Images per forward pass when extracting features. */
    featureBatchSize: z.number().int().positive().default(256),
    /** Seeds k-means, the head's re-initialization and the epoch's sample order (with the epoch). */
    seed: z.number().int().nonnegative().default(0),
  })
  .strict();

type Options = z.infer<typeof options>;

/** Sobel x and y kernels, 2 x 1 x 3 x 3. */
const SOBEL = [
  [
    [1, 0, -1],
    [2, 0, -2],
    [1, 0, -1],
  ],
  [
    [1, 2, 1],
    [0, 0, 0],
    [-1, -2, -1],
  ],
];

/** Grayscale (ITU-R 601 luma) then Sobel x/y filters: N x C x H x W to N x 2 x H x W. */
export function sobelFilter(images: Tensor): Tensor {
  return tidy(() => {
    const gray = luminance(images);
    return conv2d(gray, tensor(SOBEL, { dtype: gray.dtype }).unsqueeze(1), null, 1, 1);
  });
}

/** Per-epoch seed for k-means, the head's initialization and the sample order. */
const epochSeed = (seed: number, epoch: number) => seed * 1_000_003 + epoch;

/**
 * Store indices in an epoch's order, uniform over clusters: each non-empty cluster gets M / K'
 * slots (a random M mod K' of them one more), filled by cycling through its members in a random
 * order, then all M shuffled. A pure function of (labels, k, seed).
 *
 * @param indices the training samples (store indices), M of them
 * @param labels their clusters (int64 M, in [0, k))
 */
export function uniformOverClusters(indices: Int32Array, labels: Tensor, k: number, seed: number): Int32Array {
  const m = indices.length;
  if (labels.numel() !== m) throw new RangeError(`uniformOverClusters: ${m} indices but ${labels.numel()} labels`);
  const generator = new Generator(seed);
  const [grouped, sizes] = tidy(() => {
    // Members grouped by cluster, in random order within each.
    const shuffled = randperm(m, generator);
    const keys = labels
      .index(shuffled)
      .mul(m)
      .add(arange(0, m, 1, 'int64'));
    return [shuffled.index(keys.argsort()).int().toTypedArray() as Int32Array, labels.bincount(null, k).toArray()];
  });
  const clusters = sizes.flatMap((size, c) => (size > 0 ? [c] : []));
  const base = Math.floor(m / clusters.length);
  const larger = new Set(
    randperm(clusters.length, generator)
      .narrow(0, 0, m - base * clusters.length)
      .toArray(),
  );
  const starts = new Int32Array(k);
  for (let c = 1; c < k; c++) starts[c] = starts[c - 1] + sizes[c - 1];
  const order = new Int32Array(m);
  let slot = 0;
  clusters.forEach((c, rank) => {
    const quota = base + (larger.has(rank) ? 1 : 0);
    for (let j = 0; j < quota; j++) order[slot++] = indices[grouped[starts[c] + (j % sizes[c])]];
  });
  const shuffle = randperm(m, generator).int().toTypedArray() as Int32Array;
  return Int32Array.from(shuffle, (i) => order[i]);
}

/** The features k-means clusters: PCA-whitened, then L2-normalized rows. */
function whiten(features: Tensor, pca: Pca): Tensor {
  return tidy(() => {
    const whitened = applyPca(features, pca);
    return whitened.div(whitened.norm(2, 1, true).clamp(1e-12));
  });
}

/** Cluster sizes' min, median and max. */
function sizeSummary(sizes: number[]): { min: number; median: number; max: number } {
  const sorted = [...sizes].sort((a, b) => a - b);
  return { min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1] };
}

/** What one clustering produced; every tensor is kept (outside scopes) until replaced. */
interface Clustering {
  epoch: number;
  /** Store indices that were clustered (int32 M). */
  members: Tensor;
  /** Their clusters (int64 M). */
  assignments: Tensor;
  centroids: Tensor;
  pca: Pca;
  /** Cluster of every store index up to the largest member, -1 elsewhere (int64). */
  lookup: Tensor;
}

function makeLookup(members: Tensor, assignments: Tensor): Tensor {
  return tidy(() =>
    tensor([-1])
      .expand([members.max().item() + 1])
      .clone()
      .indexPut_(members.long(), assignments),
  );
}

function disposeClustering(c: Clustering): void {
  for (const t of [c.members, c.assignments, c.centroids, c.pca.mean, c.pca.projection, c.lookup]) t.dispose();
}

class DeepClusterModel extends ClassifierTask<PooledClassifier> {
  private clustering: Clustering | undefined;

  constructor(
    backbone: Backbone,
    private readonly o: Options,
  ) {
    super(backbone, new PooledClassifier(backbone.outChannels, o.k));
    if (o.sobel && backbone.inChannels !== 2) {
      throw new Error(`deepcluster: with sobel the backbone takes 2 input channels (Sobel x, y), but it takes ${backbone.inChannels}`);
    }
    this.encoderInput = o.sobel ? sobelFilter : undefined;
  }

  /** What the backbone sees: the Sobel gradients when asked for; without Sobel, the images as they are (no mapping). */
  readonly encoderInput: ((images: Tensor) => Tensor) | undefined;

  private input(images: Tensor): Tensor {
    return this.encoderInput ? this.encoderInput(images) : images;
  }

  prepare(batch: Batch): PretextBatch {
    return { inputs: this.input(batch.images), targets: this.pseudoLabels(batch), extra: { images: batch.images } };
  }

  /**
   * Each sample's cluster: its assignment when it was clustered, else (a test image in `pretext
   * show`) its nearest centroid; -1 before any clustering.
   */
  private pseudoLabels(batch: Batch): Tensor {
    const c = this.clustering;
    if (!c) return full([batch.indices.numel()], -1, 'int64');
    return tidy(() => {
      const size = c.lookup.numel();
      const known = where(batch.indices.lt(size), c.lookup.index(batch.indices.clamp(0, size - 1)), -1);
      if (known.min().item() >= 0) return known;
      const nearest = nearestCentroids(whiten(this.pooledFeatures(batch.images), c.pca), c.centroids).labels;
      return where(known.ge(0), known, nearest);
    });
  }

  logits(inputs: Tensor): Tensor {
    return this.modules.head.forward(this.modules.backbone.forward(inputs));
  }

  /** Global average pool of the last block, in eval mode and without grad (the features k-means sees). */
  private pooledFeatures(images: Tensor): Tensor {
    const { backbone } = this.modules;
    const wasTraining = backbone.training;
    backbone.eval();
    try {
      return noGrad(() => tidy(() => backbone.forward(this.input(images)).mean([2, 3])));
    } finally {
      backbone.train(wasTraining);
    }
  }

  /**
   * Pooled features of this data-parallel rank's share of the training samples (all of them
   * alone): features n x D and their store indices n.
   */
  private async extractFeatures(context: EpochContext): Promise<{ features: Tensor; members: Tensor }> {
    const features: Tensor[] = [];
    const members: Tensor[] = [];
    for await (const batch of context.batches({ batchSize: this.o.featureBatchSize, share: true })) {
      features.push(this.pooledFeatures(batch.images));
      members.push(batch.indices.int());
      disposeBatch(batch);
    }
    const own = tidy(() => ({ features: cat(features), members: cat(members) }));
    for (const t of [...features, ...members]) t.dispose();
    return own;
  }

  async onEpochStart(context: EpochContext): Promise<void> {
    if (context.resumed && this.clustering?.epoch === context.epoch) {
      context.log(`deepcluster: epoch ${context.epoch + 1} clusters restored from the checkpoint`);
      return;
    }
    if (context.indices.length < this.o.k) {
      throw new Error(`deepcluster: k = ${this.o.k} clusters need at least ${this.o.k} training samples, got ${context.indices.length}`);
    }
    const start = performance.now();
    // Each rank clusters its share of the features, summing statistics with the others (PCA,
    // k-means++ and Lloyd): no rank holds the whole set; the assignments are gathered after.
    const { features, members: own } = await this.extractFeatures(context);
    const seed = epochSeed(this.o.seed, context.epoch);
    const { shards } = context;
    const clustered = tidy(() => {
      const pca = fitPcaWhitening(features, Math.min(this.o.pcaDim, features.shape[1]), undefined, shards);
      const result = kmeans(whiten(features, pca), {
        k: this.o.k,
        restarts: this.o.restarts,
        maxIterations: this.o.iterations,
        tolerance: this.o.tolerance,
        seed,
        shards,
      });
      return { pca, ...result };
    });
    features.dispose();
    const members = await context.gatherRows(own);
    const assignments = await context.gatherRows(clustered.assignments);
    own.dispose();
    clustered.assignments.dispose();
    const next = { ...clustered, members, assignments };
    const metrics = this.clusterMetrics(context, next.members, next.assignments);
    const clustering: Clustering = { epoch: context.epoch, ...next, lookup: makeLookup(next.members, next.assignments) };
    this.replaceClustering(clustering);
    this.resetHead(seed, context);
    const seconds = (performance.now() - start) / 1000;
    context.record({ ...metrics, inertia: next.inertia, clusterSeconds: seconds });
    const nmi = (name: string) => (name in metrics ? ` ${name} ${metrics[name].toFixed(3)}` : '');
    context.log(
      `deepcluster: epoch ${context.epoch + 1}: ${members.numel()} samples into ${this.o.k} clusters (sizes ${metrics.clusterSizeMin}/${metrics.clusterSizeMedian}/${metrics.clusterSizeMax}, ` +
        `${next.splits} empty re-seeded), inertia ${next.inertia.toFixed(1)},${nmi('nmiPrevious')}${nmi('nmiLabels')}, ${seconds.toFixed(1)} s`,
    );
  }

  /** NMI against the previous epoch's clusters and the true labels (where known), and cluster sizes. */
  private clusterMetrics(context: EpochContext, members: Tensor, assignments: Tensor): Record<string, number> {
    return tidy(() => {
      const sizes = sizeSummary(assignments.bincount(null, this.o.k).toArray());
      const metrics: Record<string, number> = { clusterSizeMin: sizes.min, clusterSizeMedian: sizes.median, clusterSizeMax: sizes.max };
      const index = members.long();
      const previous = this.clustering?.lookup;
      if (previous && previous.numel() > index.max().item()) {
        const before = previous.index(index);
        const known = before.ge(0);
        if (known.all().item()) metrics.nmiPrevious = normalizedMutualInformation(before, assignments);
      }
      const labels = fromTypedArray(context.store.labels).long().index(index);
      const labeled = labels.ge(0);
      if (labeled.any().item())
        metrics.nmiLabels = normalizedMutualInformation(labels.maskedSelect(labeled), assignments.maskedSelect(labeled));
      return metrics;
    });
  }

  private replaceClustering(next: Clustering): void {
    if (this.clustering) disposeClustering(this.clustering);
    for (const t of [next.members, next.assignments, next.centroids, next.pca.mean, next.pca.projection, next.lookup]) keep(t);
    this.clustering = next;
  }

  /** The paper's fresh top layer at each reassignment: weights N(0, 0.01), zero bias, no optimizer state. */
  private resetHead(seed: number, context: EpochContext): void {
    const { fc } = this.modules.head;
    const generator = new Generator(seed);
    nn.init.normal_(fc.weight, 0, 0.01, generator);
    if (fc.bias) nn.init.zeros_(fc.bias);
    context.resetOptimizerState(this.modules.head.parameters());
  }

  /** Uniform over clusters; undefined (the loader's order) before clustering or for samples that were not clustered. */
  epochOrder(epoch: number, indices: Int32Array): Int32Array | undefined {
    const c = this.clustering;
    if (!c) return undefined;
    return tidy(() => {
      const rows = fromTypedArray(indices).long();
      if (rows.max().item() >= c.lookup.numel()) return undefined;
      const labels = c.lookup.index(rows);
      return labels.min().item() < 0 ? undefined : uniformOverClusters(indices, labels, this.o.k, epochSeed(this.o.seed, epoch));
    });
  }

  state(): TaskState {
    const c = this.clustering;
    if (!c) return { json: { epoch: -1 } };
    return {
      tensors: {
        members: c.members,
        assignments: c.assignments.int(),
        centroids: c.centroids,
        pcaMean: c.pca.mean,
        pcaProjection: c.pca.projection,
      },
      json: { epoch: c.epoch, k: this.o.k },
    };
  }

  loadState(state: TaskState): void {
    const { epoch, k } = state.json as { epoch: number; k?: number };
    const t = state.tensors;
    if (epoch < 0 || !t) return;
    if (k !== this.o.k) throw new Error(`deepcluster: the saved state has k = ${k}, the task k = ${this.o.k}`);
    const members = t.members.int().clone();
    const assignments = t.assignments.long();
    this.replaceClustering({
      epoch,
      members,
      assignments,
      centroids: t.centroids.clone(),
      pca: { mean: t.pcaMean.clone(), projection: t.pcaProjection.clone() },
      lookup: makeLookup(members, assignments),
    });
  }
}

export const deepclusterTask: PretextTask<typeof options> = {
  name: 'deepcluster',
  description: 'DeepCluster: k-means the features every epoch and predict each image’s cluster',
  paper: 'Caron, Bojanowski, Joulin & Douze, Deep Clustering for Unsupervised Learning of Visual Features, ECCV 2018',
  options,
  // The paper's Figure 2: how stable the clusters are, and how much they say about the classes.
  charts: [
    {
      name: 'nmi',
      title: 'DeepCluster: NMI of each epoch’s clusters',
      yLabel: 'normalized mutual information',
      series: [
        { metric: 'nmiPrevious', label: 'to the previous epoch’s clusters' },
        { metric: 'nmiLabels', label: 'to the true labels' },
      ],
    },
  ],
  // The paper's recipe (AlexNet with BatchNorm, Sobel input, SGD lr 0.05, momentum 0.9, weight decay
  // 1e-5, batch 256, random resized crops and flips), on the AlexNet-style trunk at CIFAR size.
  defaults: {
    backbone: 'alexnet',
    epochs: 100,
    batchSize: 256,
    augment: { randomResizedCrop: {}, horizontalFlip: 0.5 },
    optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9, nesterov: false, weightDecay: 1e-5 },
    schedule: { name: 'constant' },
  },
  inputChannels: (dataChannels, o) => (o.sobel ? 2 : dataChannels),
  create: (backbone, o) => new DeepClusterModel(backbone, o),
  picture(batch, answers, display) {
    const targets = batch.targets.toArray();
    return {
      panels: display(batch.extra!.images),
      captions: targets.map((t, i) => (t < 0 ? 'not clustered yet' : `cluster ${t}${answerMark(answers?.[i], (k) => `${k}`)}`)),
      columns: Math.min(8, targets.length),
    };
  },
};
