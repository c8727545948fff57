// @pretext/torch: tensors, autograd, nn, optim and safetensors over libtorch.
export * from './generated/functions.js';
export { Tensor } from './tensor.js';
export { tensor, fromTypedArray, type TensorOptions } from './creation.js';
export {
  Device,
  device,
  type DType,
  type MemoryFormat,
  type DeviceLike,
  type Reduction,
  type AnyTypedArray,
  isFloatingDType,
  bytesPerElement,
} from './dtype.js';
export { Generator, manualSeed, defaultGenerator } from './generator.js';
export { tidy, keep, scopeDepth } from './scope.js';
export { noGrad, enableGrad, isGradEnabled, autocast } from './autograd.js';
export * as autograd from './autograd.js';
export { setNumThreads, getNumThreads, runtimeInfo, cuda, cpu, cpuCache, cpuinfoHasBf16 } from './runtime.js';
export type { CpuCacheStats } from './handle.js';
export * as nn from './nn/index.js';
export * as linalg from './linalg.js';
export * as optim from './optim/index.js';
export * as safetensors from './io/safetensors.js';
export * as distributed from './distributed.js';
export { writeFileAtomic, writeFully, prepareOutputFile, makeDirectory, atomicTempPath } from './io/atomic.js';
export * as testing from './testing/gradcheck.js';
