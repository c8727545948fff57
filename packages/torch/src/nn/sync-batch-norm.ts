// SyncBatchNorm as PyTorch's: batch normalization whose training-mode statistics cover the batches
// of every rank, so that data-parallel training normalizes as one process on the whole batch would.
import { getWorldSize, isInitialized, syncBatchNorm, type ProcessGroup } from '../distributed.js';
import type { Tensor } from '../tensor.js';
import { BatchNormBase, type BatchNormOptions } from './layers.js';
import { Module } from './module.js';

export interface SyncBatchNormOptions extends BatchNormOptions {
  /** The ranks whose batches are normalized together (default: the default process group). */
  processGroup?: ProcessGroup;
}

/**
 * Batch normalization over N, C, * inputs with the mean and variance of every rank's batch. In
 * evaluation mode, or alone (no process group, or a world of one), it is BatchNorm. Training mode
 * runs one collective in forward and one in backward, so every rank must run the same forward and
 * backward passes through it.
 */
export class SyncBatchNorm extends BatchNormBase {
  readonly processGroup: ProcessGroup | undefined;

  constructor(numFeatures: number, options: SyncBatchNormOptions = {}) {
    super(numFeatures, [2, 3, 4, 5], options);
    this.processGroup = options.processGroup;
  }

  protected override normalize(x: Tensor): Tensor {
    const worldSize = this.processGroup?.worldSize ?? (isInitialized() ? getWorldSize() : 1);
    if (!this.training || worldSize === 1) return super.normalize(x);
    const options = { weight: this.weight, bias: this.bias, momentum: this.momentum, eps: this.eps };
    return syncBatchNorm(x, this.runningMean, this.runningVar, options, this.processGroup);
  }

  /**
   * Replaces every BatchNorm layer in `module` by a SyncBatchNorm that takes over its parameters
   * and buffers (the state dict keeps its keys and tensors, so optimizers and checkpoints carry
   * on), as PyTorch's convert_sync_batchnorm. Children are replaced in place; the result is
   * `module`, or its replacement when `module` is itself a BatchNorm layer.
   */
  static convertSyncBatchnorm<M extends Module<any, any>>(module: M, processGroup?: ProcessGroup): M | SyncBatchNorm {
    if (module instanceof BatchNormBase && !(module instanceof SyncBatchNorm)) return SyncBatchNorm.replacing(module, processGroup);
    for (const [name, child] of module.namedChildren()) {
      const converted = SyncBatchNorm.convertSyncBatchnorm(child, processGroup);
      if (converted !== child) (module as unknown as Record<string, Module<any, any>>)[name] = converted;
    }
    return module;
  }

  private static replacing(batchNorm: BatchNormBase, processGroup: ProcessGroup | undefined): SyncBatchNorm {
    const { eps, momentum, trackRunningStats } = batchNorm;
    const sync = new SyncBatchNorm(batchNorm.numFeatures, { eps, momentum, trackRunningStats, affine: false, processGroup });
    sync.weight = batchNorm.weight;
    sync.bias = batchNorm.bias;
    for (const [name, buffer, persistent] of batchNorm.namedBuffers()) {
      sync.buffer(name).dispose();
      sync.registerBuffer(name, buffer, persistent);
    }
    sync.training = batchNorm.training;
    return sync;
  }
}
