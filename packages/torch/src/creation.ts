// Tensors from JS data.
import { dtypeOfArray, isFloatingDType, type AnyTypedArray, type DType, type DeviceLike } from './dtype.js';
import { deviceName, dtypeCode, native, wrap } from './handle.js';
import type { Tensor } from './tensor.js';

export interface TensorOptions {
  dtype?: DType;
  device?: DeviceLike;
  requiresGrad?: boolean;
}

type Nested = number | boolean | Nested[];

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let level: Nested = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  return shape;
}

function flatten(data: Nested, shape: number[], dim: number, out: number[]): void {
  if (dim === shape.length) {
    if (typeof data !== 'number' && typeof data !== 'boolean') throw new TypeError('tensor: ragged nested array');
    out.push(Number(data));
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) throw new TypeError(`tensor: ragged nested array at depth ${dim}`);
  for (const item of data) flatten(item, shape, dim + 1, out);
}

function typedArrayFor(dtype: DType, values: ArrayLike<number>): AnyTypedArray {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    case 'int32':
      return Int32Array.from(values);
    case 'int64':
      return BigInt64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v))));
    case 'int16':
      return Int16Array.from(values);
    case 'int8':
      return Int8Array.from(values);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(values, (v) => (dtype === 'bool' ? (v ? 1 : 0) : v));
    default:
      throw new TypeError(`tensor: cannot build ${dtype} from JS numbers; build float32 and convert with .to()`);
  }
}

/** A tensor from a typed array (copied) in the given shape; the dtype follows the array type. */
export function fromTypedArray(
  data: AnyTypedArray,
  shape?: number[],
  options: Omit<TensorOptions, 'dtype'> & { dtype?: 'bool' } = {},
): Tensor {
  const dims = shape ?? [data.length];
  const dtype = options.dtype ?? dtypeOfArray(data);
  const t = wrap(native.fromBuffer(data, dtypeCode(dtype)!, dims, deviceName(options.device)));
  if (options.requiresGrad) t.requiresGrad_(true);
  return t;
}

/**
 * A tensor from a number, nested arrays or a typed array. As in PyTorch, integers give int64,
 * booleans bool and anything else float32, unless a dtype is given.
 */
export function tensor(data: Nested | AnyTypedArray, options: TensorOptions = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const t = fromTypedArray(data as AnyTypedArray, undefined, { device: options.device });
    return finish(options.dtype && options.dtype !== t.dtype ? t.to(options.dtype) : t, options);
  }
  const shape = inferShape(data);
  const values: number[] = [];
  let allBool = true;
  const visit = (d: Nested): void => {
    if (Array.isArray(d)) d.forEach(visit);
    else if (typeof d !== 'boolean') allBool = false;
  };
  visit(data);
  flatten(data, shape, 0, values);
  const inferred: DType = allBool && values.length > 0 ? 'bool' : values.every(Number.isInteger) ? 'int64' : 'float32';
  const dtype = options.dtype ?? inferred;
  const code = dtypeCode(dtype, 'tensor')!;
  if (options.requiresGrad && !isFloatingDType(dtype)) throw new TypeError(`tensor: only floating tensors can require grad, got ${dtype}`);
  const t = wrap(native.fromBuffer(typedArrayFor(dtype, values), code, shape, deviceName(options.device)));
  return finish(t, options);
}

function finish(t: Tensor, options: TensorOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad_(true);
  return t;
}
