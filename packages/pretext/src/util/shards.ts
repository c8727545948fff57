// The data-parallel workers that each hold a share of some rows, as work split across ranks sees them.
import type { Tensor } from '@pretext/torch';

export interface Shards {
  rank: number;
  worldSize: number;
  /** Sums the tensor over the workers, in place (every worker gets the total); alone, nothing. */
  sum(t: Tensor): void;
}

export const ALONE: Shards = { rank: 0, worldSize: 1, sum: () => {} };
