// torch.distributed: c10d's TCPStore rendezvous and ProcessGroupGloo collectives, with the launch
// contract of torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
// and DistributedDataParallel for data-parallel training. Collectives are async (they settle on
// libuv's thread pool); DistributedDataParallel waits inside the training step, as PyTorch's does.
import { handles, native } from './handle.js';
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

/**
 * Data-parallel training as PyTorch's DistributedDataParallel: the parameters and buffers start as
 * rank 0's, and after backward, syncGradients() averages the gradients across ranks in buckets of
 * about `bucketMb` (each bucket one flat allreduce). Inside noSync() gradients accumulate locally.
 */
export class DistributedDataParallel {
  private syncing = true;
  private readonly bucketBytes: number;

  constructor(
    readonly modules: Module[],
    readonly group: ProcessGroup = groupOf(undefined),
    options: { bucketMb?: number } = {},
  ) {
    this.bucketBytes = (options.bucketMb ?? 25) * 2 ** 20;
  }

  /** Copies rank 0's parameters and buffers to every rank. */
  broadcastState(): void {
    const state = this.modules.flatMap((m) => [...m.stateDict().values()]);
    noGrad(() => {
      for (const bucket of this.buckets(state)) this.exchange(bucket, (flat) => blocking.broadcast([flat], 0, this.group), false);
    });
  }

  /** Averages the gradients of `parameters` (default: every module's) across ranks. */
  syncGradients(parameters = this.modules.flatMap((m) => m.parameters())): void {
    if (!this.syncing || this.group.worldSize === 1) return;
    const grads = parameters.flatMap((p) => (p.grad ? [p.grad] : []));
    noGrad(() => {
      // Gloo has no AVG: sum, then divide.
      const average = (flat: Tensor) => {
        blocking.allReduce([flat], 'sum', this.group);
        flat.div_(this.group.worldSize);
      };
      for (const bucket of this.buckets(grads)) this.exchange(bucket, average, true);
    });
  }

  /** Runs `fn` without gradient synchronization (gradient accumulation over several backward passes). */
  noSync<T>(fn: () => T): T {
    this.syncing = false;
    try {
      return fn();
    } finally {
      this.syncing = true;
    }
  }

  private *buckets(tensors: Tensor[]): Generator<Tensor[]> {
    let bucket: Tensor[] = [];
    let bytes = 0;
    for (const t of tensors) {
      bucket.push(t);
      bytes += t.numel() * 4;
      if (bytes >= this.bucketBytes) {
        yield bucket;
        bucket = [];
        bytes = 0;
      }
    }
    if (bucket.length) yield bucket;
  }

  /** Flattens a bucket (floating tensors of one dtype per call), runs the collective, copies back. */
  private exchange(bucket: Tensor[], collective: (flat: Tensor) => void, floatingOnly: boolean): void {
    const byDtype = new Map<string, Tensor[]>();
    for (const t of bucket) {
      if (floatingOnly && !t.dtype.startsWith('float') && t.dtype !== 'bfloat16') continue;
      byDtype.set(t.dtype, [...(byDtype.get(t.dtype) ?? []), t]);
    }
    for (const group of byDtype.values()) {
      tidy(() => {
        const flat = cat(group.map((t) => t.reshape([-1])));
        collective(flat);
        let offset = 0;
        for (const t of group) {
          t.copy_(flat.narrow(0, offset, t.numel()).view(t.shape));
          offset += t.numel();
        }
      });
    }
  }
}
