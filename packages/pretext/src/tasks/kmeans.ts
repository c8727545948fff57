// Clustering math for DeepCluster, as batched engine tensor ops: Lloyd's k-means with greedy
// k-means++ seeding and restarts, PCA whitening, and normalized mutual information between labelings.
// Distances use ||x||^2 - 2 x·c + ||c||^2 with one matmul per block of rows, so memory stays bounded
// whatever n and k. Empty clusters are handled as Faiss (which the paper used) does: the empty
// centroid becomes a symmetrically perturbed copy of a large cluster's centroid, splitting it.
// With `shards`, each data-parallel worker holds its own share of the rows: seeding, Lloyd and PCA
// then sum their statistics across the workers, and no worker needs the whole set in memory.
import {
  arange,
  cat,
  Generator,
  getNumThreads,
  linalg,
  noGrad,
  ones,
  rand,
  randint,
  setNumThreads,
  stack,
  tensor,
  tidy,
  zeros,
  type Tensor,
} from '@pretext/torch';
import { ALONE, type Shards } from '../util/shards.js';

/** Distances computed per block of rows: about this many floats per block. */
const BLOCK_FLOATS = 1 << 22;
/** Faiss's relative perturbation when a cluster is split to fill an empty one. */
const SPLIT_EPS = 1 / 1024;

/** A number of each worker, in rank order. */
function perWorker(value: number, shards: Shards): number[] {
  const values = tensor(
    Array.from({ length: shards.worldSize }, (_, r) => (r === shards.rank ? value : 0)),
    { dtype: 'float64' },
  );
  shards.sum(values);
  const out = values.toArray() as number[];
  values.dispose();
  return out;
}

/** A float64 total over the workers of this worker's scalar (a number or a 0-d tensor). */
function totalOverWorkers(value: number | Tensor, shards: Shards): number {
  const t = typeof value === 'number' ? tensor([value], { dtype: 'float64' }) : value.reshape([1]);
  shards.sum(t);
  const total = t.item();
  t.dispose();
  return total;
}

/** The worker holding a global position `at` of a distribution split as `totals` (in rank order), and the offset within it. */
function owner(at: number, totals: number[]): { rank: number; offset: number } {
  let start = 0;
  for (let rank = 0; rank < totals.length; rank++) {
    if (at < start + totals[rank] || rank === totals.length - 1) return { rank, offset: at - start };
    start += totals[rank];
  }
  throw new RangeError('owner: no workers');
}

export interface KMeansOptions {
  k: number;
  /** Lloyd iterations (centroid updates) at most; default 20, the paper's Faiss setting. */
  maxIterations?: number;
  /** Stops early when the inertia drops by no more than this fraction in an iteration; default 0 (only when assignments stop changing). */
  tolerance?: number;
  /** Independent runs (each with its own k-means++ seeding); the lowest inertia wins. Default 1. */
  restarts?: number;
  seed?: number;
  /** Rows per distance block; default 2^22 / k. */
  blockRows?: number;
  /** x is this worker's share of the rows; assignments are returned for that share. */
  shards?: Shards;
}

export interface KMeansResult {
  /** k x d. */
  centroids: Tensor;
  /** int64 n: the nearest centroid of every row (of this worker's share), for the final centroids. */
  assignments: Tensor;
  /** Sum of squared distances of the rows to their centroids. */
  inertia: number;
  /** Centroid updates run (of the best restart). */
  iterations: number;
  /** Empty clusters re-seeded by splitting (of the best restart). */
  splits: number;
}

/**
 * Runs `fn` without grad, in a tidy scope, on one intra-op thread, restoring the count after. The
 * matmuls keep BLAS's own threads; the other ops are small (k-means++ runs k steps of a few) or
 * cheap next to the matmul, and a parallel region per op costs more than it saves, far more when
 * other processes hold the cores. scikit-learn splits the work the same way (NumPy's small ops are
 * single-threaded, BLAS is not).
 */
function clusteringScope<T>(fn: () => T): T {
  const threads = getNumThreads();
  setNumThreads(1);
  try {
    return noGrad(() => tidy(fn));
  } finally {
    setNumThreads(threads);
  }
}

const blockRowsFor = (k: number, blockRows?: number) => blockRows ?? Math.max(1, Math.floor(BLOCK_FLOATS / k));

/**
 * Nearest centroid of each row (int64 n), block by block, and the sum over rows of
 * ||c||^2 - 2 x·c at that centroid (a float64 scalar): the inertia less the constant sum of ||x||^2.
 */
function assign(x: Tensor, centroids: Tensor, blockRows?: number): { labels: Tensor; partial: Tensor } {
  return tidy(() => {
    const n = x.shape[0];
    const rows = blockRowsFor(centroids.shape[0], blockRows);
    const centroidNorms = centroids.square().sum(1).unsqueeze(0);
    const transposed = centroids.t();
    const labels: Tensor[] = [];
    const partials: Tensor[] = [];
    for (let start = 0; start < n; start += rows) {
      const [label, partial] = tidy(() => {
        const block = x.narrow(0, start, Math.min(rows, n - start));
        const [best, nearest] = centroidNorms.addmm(block, transposed, 1, -2).minDim(1);
        return [nearest, best.sum(null, false, 'float64')];
      });
      labels.push(label);
      partials.push(partial);
    }
    return { labels: labels.length === 1 ? labels[0] : cat(labels), partial: partials.length === 1 ? partials[0] : stack(partials).sum() };
  });
}

/** Sum of squared norms of the rows, in float64. */
const totalSquaredNorm = (x: Tensor) => x.square().sum(null, false, 'float64').item();

/** Nearest centroid of each row (x: n x d, centroids: k x d) and the inertia of that assignment. */
export function nearestCentroids(x: Tensor, centroids: Tensor, blockRows?: number): { labels: Tensor; inertia: number } {
  return clusteringScope(() => {
    const { labels, partial } = assign(x, centroids, blockRows);
    return { labels, inertia: Math.max(0, partial.item() + totalSquaredNorm(x)) };
  });
}

/**
 * Greedy k-means++ (Arthur & Vassilvitskii 2007, with scikit-learn's 2 + ln k candidates per
 * centroid): each new centroid is the candidate, drawn with probability proportional to the squared
 * distance to the nearest centroid so far, that lowers the total the most. Returns k x d rows of x
 * (of the rows of all workers, with `shards`: every worker draws the same numbers, and the worker
 * that holds a drawn row shares it).
 */
export function kmeansPlusPlus(x: Tensor, k: number, generator: Generator, shards: Shards = ALONE): Tensor {
  const [n, d] = x.shape;
  const counts = perWorker(n, shards);
  const total = counts.reduce((a, b) => a + b, 0);
  if (!(Number.isInteger(k) && k >= 1 && k <= total))
    throw new RangeError(`kmeansPlusPlus: k must be an integer in [1, ${total}], got ${k}`);
  const trials = 2 + Math.floor(Math.log(k));
  return clusteringScope(() => {
    // Distances of candidates (rows) to every point (columns), as [-2c, ||c||^2] · [x, 1]^T + ||x||^2 in one addmm.
    const norms = x.square().sum(1).unsqueeze(0);
    const extended = cat([x, ones([n, 1], x.dtype)], 1).t();
    const squaredDistances = (centers: Tensor) => norms.addmm(cat([centers.mul(-2), centers.square().sum(1, true)], 1), extended);
    // Rows at global positions drawn from a distribution split over the workers as `totals`: each
    // worker fills in the rows it holds, found by `localIndex` from their offsets, and the sum
    // gives every worker all of them.
    const rowsAt = (positions: number[], totals: number[], localIndex: (offsets: Tensor) => Tensor) => {
      const rows = zeros([positions.length, d], x.dtype);
      const picks = positions.map((at) => owner(at, totals));
      const mine = picks.flatMap((p, i) => (p.rank === shards.rank ? [i] : []));
      if (mine.length) {
        const offsets = tensor(
          mine.map((i) => picks[i].offset),
          { dtype: 'float64' },
        ).unsqueeze(1);
        rows.indexPut_(tensor(mine, { dtype: 'int64' }), x.index(localIndex(offsets)));
      }
      shards.sum(rows);
      return rows;
    };
    const centers = zeros([k, d], x.dtype);
    const first = rowsAt([randint(0, total, [1], generator).item()], counts, (offsets) => offsets.squeeze(1).toDtype('int64'));
    centers.narrow(0, 0, 1).copy_(first);
    let closest = squaredDistances(first).clamp(0); // 1 x n
    for (let c = 1; c < k; c++) {
      const next = tidy(() => {
        const cumulative = closest.cumsum(1, 'float64');
        const totals = perWorker(n ? cumulative.narrow(1, n - 1, 1).item() : 0, shards);
        const targets = rand([trials], generator, 'float64')
          .mul(totals.reduce((a, b) => a + b, 0))
          .toArray() as number[];
        // searchsorted: the number of the worker's cumulative sums below each target's offset in it.
        const candidates = rowsAt(targets, totals, (offsets) =>
          cumulative
            .lt(offsets)
            .sum(1)
            .clamp(0, n - 1),
        );
        const candidateClosest = closest.minimum(squaredDistances(candidates));
        const potentials = candidateClosest.sum(1, false, 'float64');
        shards.sum(potentials);
        const best = potentials.argmin(0, true);
        centers.narrow(0, c, 1).copy_(candidates.index(best));
        return candidateClosest.indexSelect(0, best).clamp(0);
      });
      closest.dispose();
      closest = next;
    }
    return centers;
  });
}

/** Centroid of each cluster (k x d) and its size (int64 k) over all workers; empty clusters get a zero row. */
function clusterMeans(x: Tensor, labels: Tensor, k: number, shards: Shards): { means: Tensor; sizes: Tensor } {
  const sums = zeros([k, x.shape[1]], x.dtype).indexPut_(labels, x, true);
  const sizes = labels.bincount(null, k);
  shards.sum(sums);
  shards.sum(sizes);
  return { means: sums.div(sizes.clamp(1).unsqueeze(1).toDtype(x.dtype)), sizes };
}

/**
 * Fills every empty cluster as Faiss does: its centroid becomes a copy of the largest cluster's
 * centroid scaled by (1 ± eps) in alternating dimensions, the large one by (1 ∓ eps), and the
 * large cluster's size is split between the two. Returns how many clusters were filled.
 */
export function splitForEmptyClusters(centroids: Tensor, sizes: number[]): number {
  let splits = 0;
  noGrad(() =>
    tidy(() => {
      const d = centroids.shape[1];
      const sign = arange(0, d, 1, 'int64').remainder(2).mul(-2).add(1).toDtype(centroids.dtype).mul(SPLIT_EPS);
      for (let empty = 0; empty < sizes.length; empty++) {
        if (sizes[empty] > 0) continue;
        const largest = sizes.indexOf(Math.max(...sizes));
        if (sizes[largest] < 2) break;
        const source = centroids.narrow(0, largest, 1).clone();
        centroids.narrow(0, empty, 1).copy_(source.mul(sign.add(1)));
        centroids.narrow(0, largest, 1).copy_(source.mul(sign.neg().add(1)));
        sizes[empty] = Math.floor(sizes[largest] / 2);
        sizes[largest] -= sizes[empty];
        splits++;
      }
    }),
  );
  return splits;
}

/**
 * Lloyd's algorithm from the given centroids: assign, update, fill empty clusters, until
 * `maxIterations` updates or the inertia stops dropping by more than `tolerance` (relative). The
 * result's assignments and inertia belong to its centroids (one last assignment after the last update).
 */
export function lloyd(x: Tensor, initial: Tensor, options: Omit<KMeansOptions, 'k' | 'restarts' | 'seed'> = {}): KMeansResult {
  const k = initial.shape[0];
  const maxIterations = options.maxIterations ?? 20;
  const tolerance = options.tolerance ?? 0;
  const shards = options.shards ?? ALONE;
  return clusteringScope(() => {
    let centroids = initial.clone();
    let splits = 0;
    let iterations = 0;
    let previous = Infinity;
    const constant = totalOverWorkers(totalSquaredNorm(x), shards);
    for (;;) {
      const { labels, partial } = assign(x, centroids, options.blockRows);
      const inertia = Math.max(0, totalOverWorkers(partial, shards) + constant);
      partial.dispose();
      if (iterations === maxIterations || previous - inertia <= tolerance * previous) {
        return { centroids, assignments: labels, inertia, iterations, splits };
      }
      previous = inertia;
      const next = tidy(() => {
        const { means, sizes } = clusterMeans(x, labels, k, shards);
        splits += splitForEmptyClusters(means, sizes.toArray());
        return means;
      });
      labels.dispose();
      centroids.dispose();
      centroids = next;
      iterations++;
    }
  });
}

/** k-means with k-means++ seeding; of `restarts` runs the one with the lowest inertia. */
export function kmeans(x: Tensor, options: KMeansOptions): KMeansResult {
  const restarts = options.restarts ?? 1;
  if (!(Number.isInteger(restarts) && restarts >= 1)) throw new RangeError(`kmeans: restarts must be a positive integer, got ${restarts}`);
  const generator = new Generator(options.seed ?? 0);
  let best: KMeansResult | undefined;
  for (let r = 0; r < restarts; r++) {
    const run = clusteringScope(() => lloyd(x, kmeansPlusPlus(x, options.k, generator, options.shards), options));
    if (!best || run.inertia < best.inertia) {
      if (best) disposeResult(best);
      best = run;
    } else disposeResult(run);
  }
  return best!;
}

function disposeResult(result: KMeansResult): void {
  result.centroids.dispose();
  result.assignments.dispose();
}

// ---------------------------------------------------------------------------------------------
// PCA whitening

export interface Pca {
  /** D: the data mean. */
  mean: Tensor;
  /** D x d: the top-d principal directions, each divided by the square root of its variance. */
  projection: Tensor;
}

/**
 * PCA to at most `dim` components with whitening (Faiss's PCAMatrix with eigen power -0.5, as the
 * paper): projected data has identity covariance on the kept components. Components whose variance
 * is below `eps` times the largest (dead channels, fewer samples than features) are dropped, since
 * whitening would blow their rounding noise up to unit variance.
 */
export function fitPcaWhitening(x: Tensor, dim: number, eps = 1e-6, shards: Shards = ALONE): Pca {
  const features = x.shape[1];
  if (!(Number.isInteger(dim) && dim >= 1 && dim <= features))
    throw new RangeError(`fitPcaWhitening: dim must be in [1, ${features}], got ${dim}`);
  const n = totalOverWorkers(x.shape[0], shards);
  return noGrad(() =>
    tidy(() => {
      const sum = x.sum(0);
      shards.sum(sum);
      const mean = sum.div(n);
      const centered = x.sub(mean);
      const scatter = centered.t().mm(centered);
      shards.sum(scatter);
      const covariance = scatter.div(Math.max(1, n - 1));
      const { eigenvalues, eigenvectors } = linalg.eigh(covariance.toDtype('float64'));
      // eigh sorts ascending; PCA wants the largest variance first.
      const variances = eigenvalues.flip([0]);
      const values = variances.toArray();
      let kept = 1;
      while (kept < dim && values[kept] > eps * values[0]) kept++;
      const top = variances.narrow(0, 0, kept);
      const scale = top.maskedFill(top.eq(0), 1).rsqrt();
      const projection = eigenvectors.flip([1]).narrow(1, 0, kept).mul(scale);
      return { mean, projection: projection.toDtype(x.dtype) };
    }),
  );
}

export function applyPca(x: Tensor, pca: Pca): Tensor {
  return x.sub(pca.mean).mm(pca.projection);
}

// ---------------------------------------------------------------------------------------------
// Normalized mutual information

/** Entropy (nats) of a labeling from its cluster sizes. */
function entropy(sizes: Tensor, n: number): number {
  const p = sizes.maskedSelect(sizes.gt(0)).toDtype('float64').div(n);
  return -p.mul(p.log()).sum().item();
}

/**
 * NMI of two labelings of the same samples (int64 tensors of labels >= 0): mutual information over
 * the arithmetic mean of the entropies, as scikit-learn's normalized_mutual_info_score (which the
 * paper used). The contingency table is built sparse, by sorting pair codes, so any k fits.
 */
export function normalizedMutualInformation(first: Tensor, second: Tensor): number {
  const n = first.numel();
  if (second.numel() !== n) throw new RangeError(`normalizedMutualInformation: labelings of ${n} and ${second.numel()} samples`);
  if (n === 0) return 1;
  return noGrad(() =>
    tidy(() => {
      const a = first.long().reshape(-1);
      const b = second.long().reshape(-1);
      const [aMin, bMin, aMax, bMax] = cat([a.min().view(1), b.min().view(1), a.max().view(1), b.max().view(1)]).toArray();
      if (aMin < 0 || bMin < 0) throw new RangeError('normalizedMutualInformation: labels must be >= 0');
      const aSizes = a.bincount(null, aMax + 1);
      const bSizes = b.bincount(null, bMax + 1);
      const ha = entropy(aSizes, n);
      const hb = entropy(bSizes, n);
      if (ha === 0 && hb === 0) return 1;
      const [codes] = a
        .mul(bMax + 1)
        .add(b)
        .sort();
      const starts = cat([
        zeros([1], 'int64'),
        codes
          .narrow(0, 1, n - 1)
          .ne(codes.narrow(0, 0, n - 1))
          .nonzero()
          .view(-1)
          .add(1),
      ]);
      const ends = cat([starts.narrow(0, 1, starts.numel() - 1), tensor([n])]);
      const joint = ends.sub(starts).toDtype('float64');
      const cell = codes.index(starts);
      const rows = aSizes.index(cell.div(bMax + 1, 'floor')).toDtype('float64');
      const cols = bSizes.index(cell.remainder(bMax + 1)).toDtype('float64');
      const mi = Math.max(
        0,
        joint
          .div(n)
          .mul(joint.mul(n).div(rows.mul(cols)).log())
          .sum()
          .item(),
      );
      return mi === 0 ? 0 : mi / ((ha + hb) / 2);
    }),
  );
}
