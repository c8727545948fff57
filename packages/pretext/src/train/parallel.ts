// Data parallelism for the trainer: when the process was launched as one of several workers
// (torchrun's environment, or `pretext pretrain --nproc N`), it joins the process group, averages
// gradients with DistributedDataParallel (launched from gradient hooks while backward runs), with
// `syncBatchNorm` turns BatchNorm layers into SyncBatchNorm, and makes every rank agree on logged
// metrics and on when to stop (a signal or a budget seen by one rank stops all of them at the same
// step).
import { availableParallelism } from 'node:os';
import * as torch from '@pretext/torch';
import type { nn, Tensor } from '@pretext/torch';

export interface Parallel {
  rank: number;
  worldSize: number;
  /** Rank 0 writes logs, metrics, checkpoints and pictures. */
  isMain: boolean;
  /** Averages the gradients of these parameters across ranks (no-op alone). */
  syncGradients(parameters: nn.Parameter[]): void;
  /** Makes the modules data-parallel: SyncBatchNorm where asked for, and rank 0's state on every rank. */
  prepareModules(modules: nn.Module[]): void;
  /** Every rank's mean of each value, and whether any rank wants to stop. */
  agree(values: Record<string, number>, stop: boolean): { values: Record<string, number>; stop: boolean };
  /** This rank's contiguous share of `indices`, for work split across ranks (all of them alone). */
  share(indices: Int32Array): Int32Array;
  /** Every rank's rows (dim 0) concatenated in rank order, as a new tensor (rows of any count per rank). */
  gatherRows(rows: Tensor): Promise<Tensor>;
  /** Sums the tensor over the ranks, in place. */
  sum(tensor: Tensor): void;
  close(): void;
}

/** Rank `rank`'s contiguous part of n items split as evenly as they go among `worldSize` ranks. */
export function shareRange(n: number, rank: number, worldSize: number): [number, number] {
  return [Math.floor((n * rank) / worldSize), Math.floor((n * (rank + 1)) / worldSize)];
}

const alone: Parallel = {
  rank: 0,
  worldSize: 1,
  isMain: true,
  syncGradients: () => {},
  prepareModules: () => {},
  agree: (values, stop) => ({ values, stop }),
  share: (indices) => indices,
  gatherRows: async (rows) => rows.clone(),
  sum: () => {},
  close: () => {},
};

export interface ParallelOptions {
  /** Threads per worker; default the cores divided among the local workers. */
  threads?: number;
  syncBatchNorm?: boolean;
}

/** Joins the ranks named by the environment. */
export async function joinRanks({ threads, syncBatchNorm }: ParallelOptions, log: (line: string) => void): Promise<Parallel> {
  const env = torch.distributed.launchEnvironment();
  if (!env || env.worldSize === 1) return alone;
  if (!threads) torch.setNumThreads(Math.max(1, Math.floor(availableParallelism() / env.localWorldSize)));
  const group = await torch.distributed.initProcessGroup({ rank: env.rank, worldSize: env.worldSize });
  if (env.rank === 0) {
    log(`data parallel: ${env.worldSize} ranks (${env.localWorldSize} here) over gloo at ${env.masterAddr}:${env.masterPort}`);
  }
  // The trainer names the parameters of each phase as it syncs them, so the reducer holds no modules.
  const reducer = new torch.distributed.DistributedDataParallel([], group);
  return {
    rank: env.rank,
    worldSize: env.worldSize,
    isMain: env.rank === 0,
    syncGradients: (parameters) => reducer.syncGradients(parameters),
    prepareModules(modules) {
      if (syncBatchNorm) {
        for (const m of modules) {
          if (torch.nn.SyncBatchNorm.convertSyncBatchnorm(m, group) !== m)
            throw new Error("--sync-bn: a BatchNorm layer is one of the task's modules itself; only layers inside them are converted");
        }
      }
      new torch.distributed.DistributedDataParallel(modules, group).broadcastState();
    },
    agree(values, stop) {
      const keys = Object.keys(values);
      const flat = torch.tensor([...keys.map((k) => values[k]), stop ? 1 : 0], { dtype: 'float64' });
      torch.distributed.blocking.allReduce([flat], 'sum', group);
      const sums = flat.toArray() as number[];
      flat.dispose();
      return { values: Object.fromEntries(keys.map((k, i) => [k, sums[i] / env.worldSize])), stop: sums[keys.length] > 0 };
    },
    share: (indices) => indices.subarray(...shareRange(indices.length, env.rank, env.worldSize)),
    async gatherRows(rows) {
      // Counts first, so that every rank sends a block of the largest count, then the blocks trimmed.
      const counts = Array.from({ length: env.worldSize }, () => torch.zeros([1], 'int64'));
      const count = torch.tensor([rows.shape[0]], { dtype: 'int64' });
      await torch.distributed.allGather(counts, count, group);
      const sizes = counts.map((c) => c.item());
      const largest = Math.max(...sizes);
      const padded = torch.tidy(() =>
        rows.shape[0] === largest
          ? rows.contiguous()
          : torch.cat([rows, torch.zeros([largest - rows.shape[0], ...rows.shape.slice(1)], rows.dtype)]),
      );
      const blocks = sizes.map(() => torch.empty([largest, ...rows.shape.slice(1)], rows.dtype));
      await torch.distributed.allGather(blocks, padded, group);
      const gathered = torch.tidy(() => torch.cat(blocks.map((b, r) => torch.narrow(b, 0, 0, sizes[r]))));
      for (const t of [...counts, count, padded, ...blocks]) if (t !== rows) t.dispose();
      return gathered;
    },
    sum: (tensor) => torch.distributed.blocking.allReduce([tensor], 'sum', group),
    close() {
      reducer.dispose();
      torch.distributed.destroyProcessGroup(group);
    },
  };
}
