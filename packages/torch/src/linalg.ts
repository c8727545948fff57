// torch.linalg: the op table's linalg_* ops with PyTorch's named results.
import { linalgEigh } from './generated/functions.js';
import type { Tensor } from './tensor.js';

export interface EighResult {
  /** Ascending, real. */
  eigenvalues: Tensor;
  /** Orthonormal eigenvectors as columns, in the order of the eigenvalues. */
  eigenvectors: Tensor;
}

/**
 * Eigen-decomposition of a symmetric matrix (or a batch of them) as torch.linalg.eigh: only the
 * lower (`uplo` 'L') or upper ('U') triangle is read.
 */
export function eigh(a: Tensor, uplo: 'L' | 'U' = 'L'): EighResult {
  const [eigenvalues, eigenvectors] = linalgEigh(a, uplo);
  return { eigenvalues, eigenvectors };
}
