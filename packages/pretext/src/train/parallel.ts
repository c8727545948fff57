// Data parallelism for the trainer: when the process was launched as one of several workers
// (torchrun's environment, or `pretext pretrain --nproc N`), it joins the process group, averages
// gradients with DistributedDataParallel, and makes every rank agree on logged metrics and on when
// to stop (a signal or a budget seen by one rank stops all of them at the same step).
import { availableParallelism } from 'node:os';
import * as torch from '@pretext/torch';
import type { nn } from '@pretext/torch';

export interface Parallel {
  rank: number;
  worldSize: number;
  /** Rank 0 writes logs, metrics, checkpoints and pictures. */
  isMain: boolean;
  /** Averages the gradients of these parameters across ranks (no-op alone). */
  syncGradients(parameters: nn.Parameter[]): void;
  /** Copies rank 0's module state to every rank. */
  broadcastState(modules: nn.Module[]): void;
  /** Every rank's mean of each value, and whether any rank wants to stop. */
  agree(values: Record<string, number>, stop: boolean): { values: Record<string, number>; stop: boolean };
  close(): void;
}

const alone: Parallel = {
  rank: 0,
  worldSize: 1,
  isMain: true,
  syncGradients: () => {},
  broadcastState: () => {},
  agree: (values, stop) => ({ values, stop }),
  close: () => {},
};

/** Joins the ranks named by the environment, with threads split among the local workers unless `threads` is set. */
export async function joinRanks(threads: number | undefined, log: (line: string) => void): Promise<Parallel> {
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
    broadcastState: (modules) => new torch.distributed.DistributedDataParallel(modules, group).broadcastState(),
    agree(values, stop) {
      const keys = Object.keys(values);
      const flat = torch.tensor([...keys.map((k) => values[k]), stop ? 1 : 0], { dtype: 'float64' });
      torch.distributed.blocking.allReduce([flat], 'sum', group);
      const sums = flat.toArray() as number[];
      flat.dispose();
      return { values: Object.fromEntries(keys.map((k, i) => [k, sums[i] / env.worldSize])), stop: sums[keys.length] > 0 };
    },
    close: () => torch.distributed.destroyProcessGroup(group),
  };
}
