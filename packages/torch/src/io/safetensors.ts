// The safetensors format: an 8-byte little-endian header length, a JSON header, then raw
// little-endian tensor bytes. Files load in Python's safetensors and Hugging Face tools.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { bytesPerElement, type DType } from '../dtype.js';
import { dtypeCode, native, wrap } from '../handle.js';
import type { Tensor } from '../tensor.js';

const toSafetensors: Record<DType, string> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};
const fromSafetensors = new Map(Object.entries(toSafetensors).map(([k, v]) => [v, k as DType]));

export type TensorMap = Map<string, Tensor> | Record<string, Tensor>;

/** Serializes tensors (and optional string metadata) into safetensors bytes. */
export function serialize(tensors: TensorMap, metadata?: Record<string, string>): Buffer {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error("safetensors: '__metadata__' is reserved and cannot name a tensor");
    const bytes = new Uint8Array(native.toBuffer(t.handle));
    header[name] = { dtype: toSafetensors[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    blobs.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([head, Buffer.from(json), ...blobs]);
}

export { atomicTempPath, writeFileAtomic } from './atomic.js';

export function save(path: string, tensors: TensorMap, metadata?: Record<string, string>): void {
  writeFileAtomic(path, serialize(tensors, metadata));
}

export interface Loaded {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Parses safetensors bytes; every inconsistency is an error naming the file and tensor. */
export function deserialize(bytes: Uint8Array, source = '<buffer>'): Loaded {
  const fail = (what: string): never => {
    throw new Error(`safetensors ${source}: ${what}`);
  };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) fail(`header length ${headerLength} runs past the end of the file (${bytes.length} bytes)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLength).toString('utf8'));
  } catch (e) {
    return fail(`bad JSON header: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  try {
    for (const [name, info] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = info as Record<string, string>;
        continue;
      }
      const { dtype, shape, data_offsets: offsets } = (info ?? {}) as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      const ours = dtype === undefined ? undefined : fromSafetensors.get(dtype);
      if (!ours) fail(`tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)}`);
      if (!Array.isArray(shape) || shape.some((s) => !Number.isInteger(s) || s < 0))
        fail(`tensor '${name}' has a bad shape ${JSON.stringify(shape)}`);
      if (
        !Array.isArray(offsets) ||
        offsets.length !== 2 ||
        !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
        !(offsets[0] <= offsets[1])
      )
        fail(`tensor '${name}' has bad data_offsets ${JSON.stringify(offsets)}`);
      const expected = shape!.reduce((a, b) => a * b, 1) * bytesPerElement[ours!];
      if (offsets![1] - offsets![0] !== expected)
        fail(`tensor '${name}' holds ${offsets![1] - offsets![0]} bytes but ${ours} [${shape}] needs ${expected}`);
      if (offsets![1] > dataLength)
        fail(`tensor '${name}' data ends at ${offsets![1]} but only ${dataLength} data bytes exist (truncated file?)`);
      const slice = new Uint8Array(bytes.buffer, bytes.byteOffset + dataStart + offsets![0], expected);
      tensors.set(name, wrap(native.fromBuffer(slice, dtypeCode(ours!)!, shape!)));
    }
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return { tensors, metadata };
}

export function load(path: string): Loaded {
  return deserialize(readFileSync(path), path);
}
