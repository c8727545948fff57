// torch.linalg: decompositions checked by their defining properties (no PyTorch fixtures needed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as torch from '../src/index.js';
import type { Tensor } from '../src/index.js';

const { linalg } = torch;

/** A random symmetric float64 n x n matrix. */
function symmetric(n: number, generator: torch.Generator): Tensor {
  const a = torch.randn([n, n], generator, 'float64');
  return a.add(a.t());
}

const maxAbs = (t: Tensor) => t.abs().max().item();

test('eigh: A V = V diag(w), eigenvalues ascending, eigenvectors orthonormal columns', () =>
  torch.tidy(() => {
    const n = 24;
    const a = symmetric(n, new torch.Generator(1));
    const { eigenvalues: w, eigenvectors: v } = linalg.eigh(a);
    assert.deepEqual(w.shape, [n]);
    assert.deepEqual(v.shape, [n, n]);
    assert.equal(w.dtype, 'float64');
    assert.ok(maxAbs(a.mm(v).sub(v.mul(w))) < 1e-10, 'A V = V diag(w)');
    assert.ok(
      maxAbs(
        v
          .t()
          .mm(v)
          .sub(torch.eye(n, n, 'float64')),
      ) < 1e-10,
      'V^T V = I',
    );
    const values = w.toArray();
    for (let i = 1; i < n; i++) assert.ok(values[i - 1] <= values[i], `eigenvalue ${i} below eigenvalue ${i - 1}`);
  }));

test("eigh reads only the 'L' or 'U' triangle, and takes batches", () =>
  torch.tidy(() => {
    const generator = new torch.Generator(2);
    const a = symmetric(5, generator);
    const expected = linalg.eigh(a).eigenvalues;
    const noise = torch.randn([5, 5], generator, 'float64');
    assert.ok(maxAbs(linalg.eigh(a.add(noise.triu(1))).eigenvalues.sub(expected)) < 1e-12, 'upper triangle ignored');
    assert.ok(maxAbs(linalg.eigh(a.add(noise.tril(-1)), 'U').eigenvalues.sub(expected)) < 1e-12, 'lower triangle ignored');
    const batch = torch.stack([a, symmetric(5, generator), symmetric(5, generator)]);
    const { eigenvalues, eigenvectors } = linalg.eigh(batch);
    assert.deepEqual(eigenvalues.shape, [3, 5]);
    assert.deepEqual(eigenvectors.shape, [3, 5, 5]);
    assert.ok(maxAbs(eigenvalues.select(0, 0).sub(expected)) < 1e-12);
  }));
