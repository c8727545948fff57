// The Tensor class: a handle to a libtorch tensor plus PyTorch-named methods (generated in TensorOps).
import { inspect } from 'node:util';
import {
  Device,
  asDevice,
  device as toDevice,
  dtypeFromCode,
  isDType,
  typedArrayView,
  type AnyTypedArray,
  type DType,
  type DeviceLike,
} from './dtype.js';
import { TensorOps } from './generated/tensor-ops.js';
import { dtypeCode, native, registerTensorFactory, wrap, wrapOptional, type Handle } from './handle.js';
import { registerTensorCheck, track } from './scope.js';

export class Tensor extends TensorOps {
  readonly #handle: Handle;
  #disposed = false;

  constructor(handle: Handle) {
    super();
    this.#handle = handle;
    track(this);
  }

  /** The native handle. After dispose() it is an empty one, which every op rejects naming itself and the argument. */
  get handle(): Handle {
    return this.#handle;
  }

  /** Tells V8 about this tensor's memory, once; for tensors that no scope will free. */
  reportMemory(): void {
    if (!this.#disposed) native.reportMemory(this.#handle);
  }

  /** Frees this reference now; other tensors that share the storage keep it alive. */
  dispose(): void {
    if (!this.#disposed) {
      native.dispose(this.#handle);
      this.#disposed = true;
    }
  }

  get isDisposed(): boolean {
    return this.#disposed;
  }

  get shape(): number[] {
    return native._sizes(this.handle);
  }

  get ndim(): number {
    return this.dim();
  }

  /** The size of one dimension (negative counts from the end), or the whole shape. */
  size(): number[];
  size(dim: number): number;
  size(dim?: number): number | number[] {
    const shape = this.shape;
    if (dim === undefined) return shape;
    const d = dim < 0 ? dim + shape.length : dim;
    if (d < 0 || d >= shape.length) throw new RangeError(`size: dim ${dim} is out of range for a ${shape.length}-d tensor`);
    return shape[d];
  }

  get dtype(): DType {
    return dtypeFromCode(native._scalar_type(this.handle));
  }

  get device(): Device {
    return toDevice(native._device_name(this.handle));
  }

  get requiresGrad(): boolean {
    return native._requires_grad(this.handle);
  }

  set requiresGrad(value: boolean) {
    this.requiresGrad_(value);
  }

  /** The accumulated gradient, or undefined. Each read returns a new reference to the same storage. */
  get grad(): Tensor | undefined {
    return wrapOptional(native._grad(this.handle));
  }

  set grad(value: Tensor | undefined) {
    native._set_grad(this.handle, value?.handle);
  }

  backward(options: { gradient?: Tensor; retainGraph?: boolean; createGraph?: boolean } = {}): void {
    const create = options.createGraph ?? false;
    native.backward(this.handle, options.gradient?.handle, options.retainGraph ?? create, create);
  }

  /** Converts to a dtype or moves to a device: `t.to('float64')`, `t.to('cuda')`. */
  to(target: DType | DeviceLike): Tensor {
    if (typeof target === 'string' && isDType(target)) return this.toDtype(target);
    const device = asDevice(target);
    if (!device) throw new TypeError(`to: expected a dtype or a device ('cpu', 'cuda', 'cuda:N'), got ${JSON.stringify(target)}`);
    return this.toDevice(device);
  }

  float(): Tensor {
    return this.toDtype('float32');
  }

  double(): Tensor {
    return this.toDtype('float64');
  }

  long(): Tensor {
    return this.toDtype('int64');
  }

  int(): Tensor {
    return this.toDtype('int32');
  }

  bool(): Tensor {
    return this.toDtype('bool');
  }

  cpu(): Tensor {
    return this.toDevice('cpu');
  }

  /** A copy of the elements, in row-major order, as the typed array of this dtype. */
  toTypedArray(): AnyTypedArray {
    return typedArrayView(this.dtype, native.toBuffer(this.handle));
  }

  /** The elements as plain numbers (int64 values beyond 2^53 lose precision). */
  toArray(): number[] {
    return Array.from(this.toTypedArray() as ArrayLike<number | bigint>, Number);
  }

  /** Nested arrays in the tensor's shape. */
  tolist(): unknown {
    const flat = this.toArray();
    const shape = this.shape;
    const build = (dim: number, offset: number): unknown => {
      if (dim === shape.length) return flat[offset];
      const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: shape[dim] }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  override toString(): string {
    if (this.isDisposed) return 'tensor(<disposed>)';
    const dtype = this.dtype;
    const values = this.toArray();
    const isFloat = dtype.startsWith('float') || dtype === 'bfloat16';
    const fmt = (v: number) => (dtype === 'bool' ? (v ? 'True' : 'False') : isFloat ? formatFloat(v) : String(v));
    const shape = this.shape;
    const render = (dim: number, offset: number, indent: string): string => {
      if (dim === shape.length) return fmt(values[offset]);
      const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      const n = shape[dim];
      const idx = n > 6 ? [0, 1, 2, -1, n - 3, n - 2, n - 1] : Array.from({ length: n }, (_, i) => i);
      const parts = idx.map((i) => (i < 0 ? '...' : render(dim + 1, offset + i * stride, indent + ' ')));
      const sep = dim === shape.length - 1 ? ', ' : `,\n${indent} `;
      return `[${parts.join(sep)}]`;
    };
    const suffix = [
      dtype !== 'float32' && dtype !== 'int64' && dtype !== 'bool' ? `dtype=${dtype}` : '',
      this.requiresGrad ? 'requires_grad=True' : '',
    ]
      .filter(Boolean)
      .join(', ');
    return `tensor(${render(0, 0, '       ')}${suffix ? `, ${suffix}` : ''})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

function formatFloat(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e8) return `${v}.`;
  if (!Number.isFinite(v)) return String(v).replace('Infinity', 'inf');
  return Math.abs(v) >= 1e-4 && Math.abs(v) < 1e8 ? v.toFixed(4) : v.toExponential(4);
}

registerTensorFactory((h) => new Tensor(h));
registerTensorCheck((v): v is Tensor => v instanceof Tensor);

export { wrap, dtypeCode };
