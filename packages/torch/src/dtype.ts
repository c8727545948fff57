// Dtypes and devices, with the codes libtorch's ScalarType uses.

export type DType = 'uint8' | 'int8' | 'int16' | 'int32' | 'int64' | 'float16' | 'float32' | 'float64' | 'bool' | 'bfloat16';

export const dtypeCodes: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
};

const namesByCode = new Map<number, DType>(Object.entries(dtypeCodes).map(([k, v]) => [v, k as DType]));

export function dtypeFromCode(code: number): DType {
  const name = namesByCode.get(code);
  if (!name) throw new Error(`unsupported libtorch scalar type code ${code}`);
  return name;
}

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && value in dtypeCodes;
}

/**
 * How a 4-d tensor lays out its elements: 'contiguous' is NCHW; 'channelsLast' keeps the NCHW
 * shape but stores NHWC, which oneDNN convolves about a third faster on CPU.
 */
export type MemoryFormat = 'contiguous' | 'channelsLast';

export function isMemoryFormat(value: unknown): value is MemoryFormat {
  return value === 'contiguous' || value === 'channelsLast';
}

export function isFloatingDType(dtype: DType): boolean {
  return dtype === 'float16' || dtype === 'float32' || dtype === 'float64' || dtype === 'bfloat16';
}

export const bytesPerElement: Record<DType, number> = {
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float16: 2,
  float32: 4,
  float64: 8,
  bool: 1,
  bfloat16: 2,
};

export type TypedArrayFor<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'int32'
      ? Int32Array
      : D extends 'int64'
        ? BigInt64Array
        : D extends 'int16' | 'float16' | 'bfloat16'
          ? Int16Array
          : D extends 'int8'
            ? Int8Array
            : Uint8Array;

export type AnyTypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

/** The dtype that a typed array's elements map to. */
export function dtypeOfArray(data: AnyTypedArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  throw new TypeError('unsupported typed array type');
}

export function typedArrayView(dtype: DType, buffer: ArrayBuffer): AnyTypedArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer);
    case 'float64':
      return new Float64Array(buffer);
    case 'int32':
      return new Int32Array(buffer);
    case 'int64':
      return new BigInt64Array(buffer);
    case 'int16':
      return new Int16Array(buffer);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(buffer);
    case 'int8':
      return new Int8Array(buffer);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buffer);
  }
}

export type Reduction = 'mean' | 'sum' | 'none';

const devicePattern = /^(cpu|cuda)(?::(\d+))?$/;

/** A device such as 'cpu', 'cuda' or 'cuda:1'. The one place device names are checked. */
export class Device {
  readonly type: 'cpu' | 'cuda';
  readonly index: number | undefined;
  constructor(spec: string) {
    const m = devicePattern.exec(spec);
    if (!m) throw new Error(`device: expected 'cpu', 'cuda' or 'cuda:N', got '${spec}'`);
    this.type = m[1] as 'cpu' | 'cuda';
    this.index = m[2] === undefined ? undefined : Number(m[2]);
  }
  toString(): string {
    return this.index === undefined ? this.type : `${this.type}:${this.index}`;
  }
}

export type DeviceLike = string | Device;

export function device(spec: DeviceLike): Device {
  return spec instanceof Device ? spec : new Device(spec);
}

/**
 * The Device that `value` is or names, or undefined when it is not one: for arguments that take
 * a device among other things, whose callers name what they expected.
 */
export function asDevice(value: unknown): Device | undefined {
  if (value instanceof Device) return value;
  return typeof value === 'string' && devicePattern.test(value) ? new Device(value) : undefined;
}
