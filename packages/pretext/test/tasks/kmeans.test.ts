import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cdist, eye, Generator, linalg, randint, randn, setNumThreads, stack, tensor, tidy, type Tensor } from '@pretext/torch';
import {
  applyPca,
  fitPcaWhitening,
  kmeans,
  kmeansPlusPlus,
  lloyd,
  nearestCentroids,
  normalizedMutualInformation,
  splitForEmptyClusters,
} from '../../src/tasks/kmeans.js';

setNumThreads(1);

/** n points around `blobs` centers spaced far apart (spread 1, centers ~N(0, 50^2)): points and their blob. */
function blobData(n: number, blobs: number, d: number, seed: number): { x: Tensor; truth: Tensor; centers: Tensor } {
  const generator = new Generator(seed);
  const centers = randn([blobs, d], generator).mul(50);
  const truth = randint(0, blobs, [n], generator);
  return { x: centers.index(truth).add(randn([n, d], generator)), truth, centers };
}

test('k-means recovers well-separated blobs, and its inertia is the direct sum of squared distances', () => {
  tidy(() => {
    const { x, truth } = blobData(600, 6, 5, 1);
    const result = kmeans(x, { k: 6, seed: 2, restarts: 2 });
    assert.ok(normalizedMutualInformation(result.assignments, truth) > 0.999);
    const direct = x.sub(result.centroids.index(result.assignments)).square().sum(null, false, 'float64').item();
    assert.ok(Math.abs(result.inertia - direct) <= 1e-4 * direct, `inertia ${result.inertia} vs direct ${direct}`);
    // Each centroid is the mean of its members, and every row sits at its nearest centroid.
    const nearest = cdist(x, result.centroids).argmin(1);
    assert.ok(nearest.equal(result.assignments));
    const members = result.assignments.eq(0);
    const mean = x.index(members.nonzero().view(-1)).mean(0);
    assert.ok(mean.allclose(result.centroids.select(0, 0), 1e-4, 1e-4));
  });
});

test('nearestCentroids gives the same labels and inertia block by block as in one block', () => {
  tidy(() => {
    const x = randn([103, 7], new Generator(3));
    const centroids = randn([9, 7], new Generator(4));
    const whole = nearestCentroids(x, centroids);
    const blocks = nearestCentroids(x, centroids, 10);
    assert.ok(whole.labels.equal(blocks.labels));
    assert.ok(whole.labels.equal(cdist(x, centroids).argmin(1)));
    const direct = cdist(x, centroids).amin(1).square().sum().item();
    assert.ok(Math.abs(whole.inertia - direct) < 1e-3 * direct);
    assert.ok(Math.abs(blocks.inertia - whole.inertia) < 1e-6 * whole.inertia);
  });
});

test('k-means++ seeding is deterministic given the seed and puts one seed in each separated blob', () => {
  tidy(() => {
    const { x, truth } = blobData(500, 8, 4, 5);
    const a = kmeansPlusPlus(x, 8, new Generator(11));
    const b = kmeansPlusPlus(x, 8, new Generator(11));
    const c = kmeansPlusPlus(x, 8, new Generator(12));
    assert.ok(a.equal(b));
    assert.ok(!a.equal(c));
    // Seeds are data rows, from 8 different blobs.
    const rows = cdist(a, x).argmin(1);
    assert.ok(x.index(rows).equal(a));
    assert.equal(new Set(truth.index(rows).toArray()).size, 8);
  });
});

test('an empty cluster is re-seeded by splitting the largest one (Faiss perturbation) and ends non-empty', () => {
  tidy(() => {
    const centroids = tensor([
      [1, 2],
      [3, 4],
      [100, 100],
    ]).float();
    const sizes = [5, 1, 0];
    assert.equal(splitForEmptyClusters(centroids, sizes), 1);
    const eps = 1 / 1024;
    const expected = tensor([
      [1 * (1 - eps), 2 * (1 + eps)],
      [3, 4],
      [1 * (1 + eps), 2 * (1 - eps)],
    ]).float();
    assert.ok(centroids.allclose(expected, 1e-6, 1e-6));
    assert.deepEqual(sizes, [3, 1, 2]);

    // Lloyd from a start where the third centroid is far from every point: its cluster empties.
    const { x, truth } = blobData(300, 2, 3, 7);
    const firstOf = (blob: number) => x.index(truth.eq(blob).nonzero().view(-1)).select(0, 0);
    const start = stack([firstOf(0), firstOf(1), tensor([1e4, 1e4, 1e4]).float()]);
    assert.equal(nearestCentroids(x, start).labels.eq(2).sum().item(), 0);
    const result = lloyd(x, start, { maxIterations: 10 });
    assert.ok(result.splits >= 1);
    const counts = result.assignments.bincount(null, 3).toArray();
    assert.ok(
      counts.every((c) => c > 0),
      `cluster sizes ${counts}`,
    );
  });
});

test('PCA whitening of float64 data: identity covariance, orthonormal components, variances descending', () => {
  tidy(() => {
    const generator = new Generator(8);
    const d = 24;
    const x = randn([3000, d], generator, 'float64').mm(randn([d, d], generator, 'float64'));
    const pca = fitPcaWhitening(x, d);
    assert.deepEqual(pca.projection.shape, [d, d]);
    assert.equal(pca.projection.dtype, 'float64');
    const y = applyPca(x, pca);
    const covariance = y
      .t()
      .mm(y)
      .div(x.shape[0] - 1);
    assert.ok(covariance.allclose(eye(d, d, 'float64'), 1e-9, 1e-9), 'whitened covariance');
    // Column j is the j-th principal direction over the square root of its variance.
    const norms = pca.projection.norm(2, 0, true);
    const directions = pca.projection.div(norms);
    assert.ok(
      directions
        .t()
        .mm(directions)
        .allclose(eye(d, d, 'float64'), 1e-10, 1e-10),
      'orthonormal directions',
    );
    const variances = norms.pow(-2).toArray();
    for (let j = 1; j < d; j++) assert.ok(variances[j] < variances[j - 1], `variance ${j} not below variance ${j - 1}`);
  });
});

test('PCA whitening keeps the top principal directions with identity covariance, and drops null ones', () => {
  tidy(() => {
    const generator = new Generator(9);
    const d = 6;
    // A random orthonormal basis (rows); data with std 10, 5, 3, 1, 0.5, 0.1 along its axes, plus an offset.
    const mixing = randn([d, d], generator).double();
    const basis = linalg.eigh(mixing.mm(mixing.t())).eigenvectors.t().float();
    const stds = tensor([10, 5, 3, 1, 0.5, 0.1]);
    const x = randn([4000, d], generator)
      .mul(stds)
      .mm(basis)
      .add(tensor([3, -2, 1, 0, 5, 7]));
    const pca = fitPcaWhitening(x, 3);
    assert.deepEqual(pca.projection.shape, [d, 3]);
    const y = applyPca(x, pca);
    const centered = y.sub(y.mean(0));
    const covariance = centered
      .t()
      .mm(centered)
      .div(y.shape[0] - 1);
    assert.ok(covariance.allclose(eye(3, 3), 1e-3, 1e-3), `covariance ${covariance.toArray()}`);
    // Column j points along the j-th largest axis.
    const directions = pca.projection.div(pca.projection.norm(2, 0, true));
    const alignment = directions
      .t()
      .mm(basis.narrow(0, 0, 3).t())
      .abs();
    assert.ok(alignment.diag().min().item() > 0.99);

    // Rank 2 data in 6 dimensions keeps 2 components even when asked for 5.
    const flat = randn([500, 2], generator).mm(randn([2, d], generator));
    assert.equal(fitPcaWhitening(flat, 5).projection.shape[1], 2);
  });
});

test('NMI: 1 for the same partition, about 0 for independent labelings, and a hand-computed case', () => {
  tidy(() => {
    const a = randint(0, 7, [5000], new Generator(10));
    assert.ok(Math.abs(normalizedMutualInformation(a, a) - 1) < 1e-12);
    assert.ok(Math.abs(normalizedMutualInformation(a, a.mul(3).add(2)) - 1) < 1e-12, 'renaming the clusters changes nothing');
    const independent = normalizedMutualInformation(
      randint(0, 10, [100000], new Generator(11)),
      randint(0, 10, [100000], new Generator(12)),
    );
    assert.ok(independent < 0.001, `independent NMI ${independent}`);
    // [0,0,1,1] against [0,0,0,1]: joint cells (0,0) 1/2, (1,0) 1/4, (1,1) 1/4.
    const mi = 0.5 * Math.log(0.5 / (0.5 * 0.75)) + 0.25 * Math.log(0.25 / (0.5 * 0.75)) + 0.25 * Math.log(0.25 / (0.5 * 0.25));
    const ha = Math.log(2);
    const hb = -(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25));
    const nmi = normalizedMutualInformation(tensor([0, 0, 1, 1]), tensor([0, 0, 0, 1]));
    assert.ok(Math.abs(nmi - mi / ((ha + hb) / 2)) < 1e-12, `${nmi}`);
    assert.equal(normalizedMutualInformation(tensor([0, 0, 0]), tensor([4, 4, 4])), 1);
    assert.equal(normalizedMutualInformation(tensor([0, 0, 1, 1]), tensor([0, 1, 0, 1])), 0);
  });
});
