// torch.distributed: c10d's TCPStore rendezvous and ProcessGroupGloo collectives, with the launch
// contract of torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
// DistributedDataParallel for data-parallel training, and SyncBatchNorm's op. Collectives are async
// (they settle on libuv's thread pool); DistributedDataParallel waits inside the training step, as
// PyTorch's does.
import { handleOf, handles, native, wrap, type GradReducerHandle } from './handle.js';
import { bytesPerElement, isFloatingDType } from './dtype.js';
import { noGrad } from './autograd.js';
import { cat } from './generated/functions.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';
import type { Module } from './nn/module.js';

export type ReduceOp = 'sum' | 'avg' | 'max' | 'min' | 'product';

export interface ProcessGroup {
  readonly id: number;
  readonly rank: number;
  readonly worldSize: number;
}

export interface InitOptions {
  /** Only 'gloo' (CPU) here; 'nccl' needs a CUDA libtorch. */
  backend?: 'gloo';
  rank?: number;
  worldSize?: number;
  masterAddr?: string;
  masterPort?: number;
  /** Rendezvous and collective timeout (default 5 minutes). */
  timeoutMs?: number;
}

let defaultGroup: ProcessGroup | undefined;

/** torchrun's variables, or undefined where the process was not launched as a worker. */
export function launchEnvironment(env: NodeJS.ProcessEnv = process.env) {
  if (env.WORLD_SIZE === undefined) return undefined;
  const int = (name: string, fallback?: number): number => {
    const text = env[name];
    if (text === undefined && fallback !== undefined) return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 0) throw new Error(`environment variable ${name}='${text}' must be a non-negative integer`);
    return value;
  };
  const worldSize = int('WORLD_SIZE');
  const rank = int('RANK');
  return {
    rank,
    worldSize,
    localRank: int('LOCAL_RANK', rank),
    localWorldSize: int('LOCAL_WORLD_SIZE', worldSize),
    masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
    masterPort: int('MASTER_PORT', 29500),
  };
}

/** Joins the process group (the rendezvous waits for every rank); options default to torchrun's environment. */
export async function initProcessGroup(options: InitOptions = {}): Promise<ProcessGroup> {
  if (options.backend && options.backend !== 'gloo')
    throw new Error(`initProcessGroup: backend '${options.backend}' is not built here; use 'gloo'`);
  const env = launchEnvironment();
  const rank = options.rank ?? env?.rank;
  const worldSize = options.worldSize ?? env?.worldSize;
  if (rank === undefined || worldSize === undefined) {
    throw new Error('initProcessGroup: give rank and worldSize, or launch with RANK and WORLD_SIZE set (torchrun, pretext --nproc)');
  }
  const addr = options.masterAddr ?? env?.masterAddr ?? '127.0.0.1';
  const port = options.masterPort ?? env?.masterPort ?? 29500;
  const id = await native.distInitProcessGroup(addr, port, rank, worldSize, options.timeoutMs ?? 300_000);
  const group = { id, rank, worldSize };
  defaultGroup ??= group;
  return group;
}

export const isInitialized = (): boolean => defaultGroup !== undefined;

function groupOf(group: ProcessGroup | undefined): ProcessGroup {
  const g = group ?? defaultGroup;
  if (!g) throw new Error('torch.distributed: no process group; call initProcessGroup() first');
  return g;
}

export const getRank = (group?: ProcessGroup): number => groupOf(group).rank;
export const getWorldSize = (group?: ProcessGroup): number => groupOf(group).worldSize;

/** Reduces each tensor in place across ranks. */
export async function allReduce(tensor: Tensor | Tensor[], op: ReduceOp = 'sum', group?: ProcessGroup): Promise<void> {
  await native.distAllReduce(groupOf(group).id, handles(Array.isArray(tensor) ? tensor : [tensor]), op);
}

/** Copies `src`'s tensor into every rank's, in place. */
export async function broadcast(tensor: Tensor | Tensor[], src = 0, group?: ProcessGroup): Promise<void> {
  await native.distBroadcast(groupOf(group).id, handles(Array.isArray(tensor) ? tensor : [tensor]), src);
}

/** Fills `outputs[r]` with rank r's `input` (one output tensor per rank, each shaped like the input). */
export async function allGather(outputs: Tensor[], input: Tensor, group?: ProcessGroup): Promise<void> {
  const g = groupOf(group);
  if (outputs.length !== g.worldSize)
    throw new Error(`allGather: give ${g.worldSize} output tensors (one per rank), got ${outputs.length}`);
  await native.distAllGather(g.id, handles(outputs), handles([input])[0]);
}

export async function barrier(group?: ProcessGroup): Promise<void> {
  await native.distBarrier(groupOf(group).id);
}

/** The same collectives, waiting on this thread: for use inside a synchronous training step. */
export const blocking = {
  allReduce(tensors: Tensor[], op: ReduceOp = 'sum', group?: ProcessGroup): void {
    native.distAllReduce(groupOf(group).id, handles(tensors), op, true);
  },
  broadcast(tensors: Tensor[], src = 0, group?: ProcessGroup): void {
    native.distBroadcast(groupOf(group).id, handles(tensors), src, true);
  },
};

export function destroyProcessGroup(group?: ProcessGroup): void {
  const g = groupOf(group);
  native.distDestroyProcessGroup(g.id);
  if (g === defaultGroup) defaultGroup = undefined;
}

export interface SyncBatchNormOptions {
  weight?: Tensor;
  bias?: Tensor;
  momentum?: number;
  eps?: number;
}

/**
 * Batch normalization in training mode with the statistics of every rank's batch, as PyTorch's
 * SyncBatchNorm: the mean and variance are global, the running statistics are updated with them,
 * and backward reduces the terms of the input gradient across ranks (inside the op, blocking).
 */
export function syncBatchNorm(
  input: Tensor,
  runningMean: Tensor | undefined,
  runningVar: Tensor | undefined,
  options: SyncBatchNormOptions = {},
  group?: ProcessGroup,
): Tensor {
  const eps = options.eps ?? 1e-5;
  if (!(eps > 0)) throw new RangeError(`syncBatchNorm: 'eps' must be positive, got ${eps}`);
  const [weight, bias, mean, variance] = [options.weight, options.bias, runningMean, runningVar].map((t) => (t ? handleOf(t) : undefined));
  return wrap(native.distSyncBatchNorm(groupOf(group).id, handleOf(input), weight, bias, mean, variance, options.momentum ?? 0.1, eps));
}

export interface DistributedDataParallelOptions {
  /** Bucket size after the first (default 25 MiB, as PyTorch's bucket_cap_mb). */
  bucketMb?: number;
  /** The first bucket, the last layers' gradients, small so that communication starts early (default 1 MiB, as PyTorch). */
  firstBucketMb?: number;
  /**
   * Launch each bucket's allreduce from gradient hooks while backward runs (default true), as
   * PyTorch's Reducer; false reduces every bucket after backward, in syncGradients().
   */
  overlap?: boolean;
}

const tensorIds = new WeakMap<Tensor, number>();
let nextTensorId = 0;
const idOf = (t: Tensor): number => {
  let id = tensorIds.get(t);
  if (id === undefined) tensorIds.set(t, (id = nextTensorId++));
  return id;
};

/**
 * Data-parallel training as PyTorch's DistributedDataParallel: the parameters and buffers start as
 * rank 0's, and syncGradients(), called after backward, leaves the gradients averaged across ranks.
 * Gradients go in buckets (each one flat allreduce), in reverse parameter order, the order backward
 * produces them. With `overlap` (the default) syncGradients() also hooks the parameters it is
 * given, so that from the next backward on each bucket is launched as soon as its gradients are
 * all accumulated, while backward goes on, and syncGradients() only waits for the buckets. Inside
 * noSync() gradients accumulate locally. Every rank must run the same backward passes.
 */
export class DistributedDataParallel {
  private syncing = true;
  private readonly bucketBytes: number;
  private readonly firstBucketBytes: number;
  private readonly overlap: boolean;
  /** One reducer per set of parameters synced together (a trainer's optimizer phases). */
  private readonly reducers = new Map<string, { handle: GradReducerHandle; buckets: number }>();
  /** Buckets in the last syncGradients(), and how many of them were launched during backward. */
  lastSync = { buckets: 0, overlapped: 0 };

  constructor(
    readonly modules: Module[],
    readonly group: ProcessGroup = groupOf(undefined),
    options: DistributedDataParallelOptions = {},
  ) {
    this.bucketBytes = (options.bucketMb ?? 25) * 2 ** 20;
    this.firstBucketBytes = (options.firstBucketMb ?? 1) * 2 ** 20;
    this.overlap = options.overlap ?? true;
  }

  /** Copies rank 0's parameters and buffers to every rank. */
  broadcastState(): void {
    const state = this.modules.flatMap((m) => [...m.stateDict().values()]);
    noGrad(() => this.exchange(state, (flat) => blocking.broadcast([flat], 0, this.group), false));
  }

  /** Averages the gradients of `parameters` (default: every module's) across ranks. */
  syncGradients(parameters = this.modules.flatMap((m) => m.parameters())): void {
    if (!this.syncing || this.group.worldSize === 1) return;
    if (this.overlap) {
      const reducer = this.reducerFor(parameters);
      this.lastSync = { buckets: reducer.buckets, overlapped: native.distGradReducerFinish(reducer.handle) };
      return;
    }
    const grads = parameters.flatMap((p) => (p.grad ? [p.grad] : []));
    // Gloo has no AVG: sum, then divide.
    const average = (flat: Tensor) => {
      blocking.allReduce([flat], 'sum', this.group);
      flat.div_(this.group.worldSize);
    };
    this.lastSync = { buckets: noGrad(() => this.exchange(grads, average, true)), overlapped: 0 };
  }

  /** Runs `fn` without gradient synchronization (gradient accumulation over several backward passes). */
  noSync<T>(fn: () => T): T {
    const setEnabled = (enabled: boolean) => this.reducers.forEach((r) => native.distGradReducerSetEnabled(r.handle, enabled));
    this.syncing = false;
    setEnabled(false);
    try {
      return fn();
    } finally {
      this.syncing = true;
      setEnabled(true);
    }
  }

  /** Removes the gradient hooks. */
  dispose(): void {
    this.reducers.forEach((r) => native.distGradReducerDispose(r.handle));
    this.reducers.clear();
  }

  /**
   * The reducer of this set of parameters, made (and hooked) at its first sync: that backward has
   * already run, so its buckets are all reduced in the reducer's finish.
   */
  private reducerFor(parameters: Tensor[]): { handle: GradReducerHandle; buckets: number } {
    const key = parameters.map(idOf).join(',');
    let reducer = this.reducers.get(key);
    if (!reducer) {
      const buckets = this.buckets(parameters, true);
      reducer = { handle: native.distGradReducer(this.group.id, handles(parameters), buckets), buckets: buckets.length };
      this.reducers.set(key, reducer);
    }
    return reducer;
  }

  /**
   * Indices of `tensors` in buckets of about bucketMb, one dtype each. `fromLast`: in reverse order
   * with a small first bucket, as gradients arrive in backward.
   */
  private buckets(tensors: Tensor[], fromLast: boolean): number[][] {
    const order = tensors.map((_, i) => i);
    if (fromLast) order.reverse();
    const buckets: number[][] = [];
    let bytes = 0;
    let cap = fromLast ? this.firstBucketBytes : this.bucketBytes;
    for (const i of order) {
      const bucket = buckets.at(-1);
      if (!bucket || bytes >= cap || tensors[bucket[0]].dtype !== tensors[i].dtype) {
        if (bucket) cap = this.bucketBytes;
        buckets.push([i]);
        bytes = 0;
      } else {
        bucket.push(i);
      }
      bytes += tensors[i].numel() * bytesPerElement[tensors[i].dtype];
    }
    return buckets;
  }

  /** Runs the collective on each bucket of `tensors` flattened (floating ones only when `floatingOnly`), copies back; returns the bucket count. */
  private exchange(tensors: Tensor[], collective: (flat: Tensor) => void, floatingOnly: boolean): number {
    const buckets = this.buckets(tensors, false).map((bucket) => bucket.map((i) => tensors[i]));
    for (const bucket of buckets) {
      if (floatingOnly && !isFloatingDType(bucket[0].dtype)) continue;
      tidy(() => {
        const flat = cat(bucket.map((t) => t.reshape([-1])));
        collective(flat);
        let offset = 0;
        for (const t of bucket) {
          t.copy_(flat.narrow(0, offset, t.numel()).view(t.shape));
          offset += t.numel();
        }
      });
    }
    return buckets.length;
  }
}
