// IDX files (the MNIST format), raw or gzip-compressed, and the Fashion-MNIST loader.
//
// Format: two zero bytes, a dtype byte, the number of dimensions, one big-endian u32 per
// dimension, then the values in row-major order, big-endian.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { SampleStore } from './store.js';

export type IdxDtype = 'u8' | 'i8' | 'i16' | 'i32' | 'f32' | 'f64';
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dtype: IdxDtype;
  dims: number[];
  data: IdxData;
}

interface DtypeInfo {
  code: number;
  bytes: number;
  create: (length: number) => IdxData;
  get: (view: DataView, offset: number) => number;
  set: (view: DataView, offset: number, value: number) => void;
}

const DTYPES: Record<IdxDtype, DtypeInfo> = {
  u8: { code: 0x08, bytes: 1, create: (n) => new Uint8Array(n), get: (v, o) => v.getUint8(o), set: (v, o, x) => v.setUint8(o, x) },
  i8: { code: 0x09, bytes: 1, create: (n) => new Int8Array(n), get: (v, o) => v.getInt8(o), set: (v, o, x) => v.setInt8(o, x) },
  i16: { code: 0x0b, bytes: 2, create: (n) => new Int16Array(n), get: (v, o) => v.getInt16(o), set: (v, o, x) => v.setInt16(o, x) },
  i32: { code: 0x0c, bytes: 4, create: (n) => new Int32Array(n), get: (v, o) => v.getInt32(o), set: (v, o, x) => v.setInt32(o, x) },
  f32: { code: 0x0d, bytes: 4, create: (n) => new Float32Array(n), get: (v, o) => v.getFloat32(o), set: (v, o, x) => v.setFloat32(o, x) },
  f64: { code: 0x0e, bytes: 8, create: (n) => new Float64Array(n), get: (v, o) => v.getFloat64(o), set: (v, o, x) => v.setFloat64(o, x) },
};

const dtypeOfCode = (code: number): IdxDtype | undefined => (Object.keys(DTYPES) as IdxDtype[]).find((key) => DTYPES[key].code === code);

const isGzip = (bytes: Uint8Array): boolean => bytes[0] === 0x1f && bytes[1] === 0x8b;

/** Parses IDX bytes (gunzipping first when they start with the gzip magic). u8 data is a view, not a copy. */
export function parseIdx(input: Uint8Array, name = 'IDX data'): IdxArray {
  const bytes = isGzip(input) ? gunzipSync(input) : input;
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) throw new Error(`${name}: not an IDX file (bad magic bytes)`);
  const dtype = dtypeOfCode(bytes[2]);
  if (!dtype) throw new Error(`${name}: unknown IDX dtype code 0x${bytes[2].toString(16)}`);
  const rank = bytes[3];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) throw new Error(`${name}: truncated IDX header`);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  const count = dims.reduce((a, b) => a * b, 1);
  const info = DTYPES[dtype];
  const expected = headerBytes + count * info.bytes;
  if (bytes.length !== expected) {
    throw new Error(`${name}: IDX size mismatch: dims ${dims.join('x')} ${dtype} need ${expected} bytes, file has ${bytes.length}`);
  }
  if (dtype === 'u8') return { dtype, dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + headerBytes, count) };
  const data = info.create(count);
  for (let i = 0; i < count; i++) data[i] = info.get(view, headerBytes + i * info.bytes);
  return { dtype, dims, data };
}

export function readIdx(path: string): IdxArray {
  return parseIdx(readFileSync(path), path);
}

/** Encodes an array as IDX bytes, gzip-compressed when asked. */
export function encodeIdx(array: IdxArray, options: { gzip?: boolean } = {}): Buffer {
  const info = DTYPES[array.dtype];
  const count = array.dims.reduce((a, b) => a * b, 1);
  if (array.data.length !== count) throw new Error(`IDX data has ${array.data.length} values, dims ${array.dims.join('x')} need ${count}`);
  const headerBytes = 4 + 4 * array.dims.length;
  const bytes = Buffer.alloc(headerBytes + count * info.bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  bytes[2] = info.code;
  bytes[3] = array.dims.length;
  array.dims.forEach((dim, i) => view.setUint32(4 + 4 * i, dim));
  for (let i = 0; i < count; i++) info.set(view, headerBytes + i * info.bytes, array.data[i]);
  return options.gzip ? gzipSync(bytes) : bytes;
}

export function writeIdx(path: string, array: IdxArray, options: { gzip?: boolean } = {}): void {
  writeFileSync(path, encodeIdx(array, options));
}

/**
 * Builds a grayscale SampleStore (channels 1) from an IDX image file (u8, dims n x h x w) and an
 * IDX label file (u8, dims n). The DataLoader's `channels: 3` option repeats it into RGB.
 */
export function loadIdxDataset(imagesPath: string, labelsPath: string, classNames: string[]): SampleStore {
  const images = readIdx(imagesPath);
  const labels = readIdx(labelsPath);
  if (images.dtype !== 'u8' || images.dims.length !== 3)
    throw new Error(`${imagesPath}: expected u8 images n x h x w, got ${images.dtype} ${images.dims.join('x')}`);
  if (labels.dims.length !== 1 || labels.dims[0] !== images.dims[0]) {
    throw new Error(`${labelsPath}: expected ${images.dims[0]} labels, got dims ${labels.dims.join('x')}`);
  }
  const [n, height, width] = images.dims;
  const name = basename(imagesPath);
  return {
    images: images.data as Uint8Array,
    n,
    height,
    width,
    channels: 1,
    labels: Int32Array.from(labels.data),
    classNames,
    paths: Array.from({ length: n }, (_, i) => `${name}#${i}`),
  };
}

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Default Fashion-MNIST folder: $FASHION_MNIST_DIR or the Debian package's location. */
export const fashionMnistDir = (): string => process.env.FASHION_MNIST_DIR || '/usr/share/datasets/fashion-mnist';

/** `<dir>/<prefix>-<kind>-ubyte.gz`, or the uncompressed file when only that exists. */
function idxFile(dir: string, prefix: string, kind: string): string {
  const gz = join(dir, `${prefix}-${kind}-ubyte.gz`);
  const raw = join(dir, `${prefix}-${kind}-ubyte`);
  if (existsSync(gz)) return gz;
  if (existsSync(raw)) return raw;
  throw new Error(`Fashion-MNIST file not found: ${gz} (install the Debian package dataset-fashion-mnist, or set FASHION_MNIST_DIR)`);
}

/** Fashion-MNIST train (60,000) or test (10,000) split: 28x28 grayscale, channels 1, labels 0..9. */
export function loadFashionMnist(options: { split: 'train' | 'test'; dir?: string }): SampleStore {
  const dir = options.dir ?? fashionMnistDir();
  const prefix = options.split === 'train' ? 'train' : 't10k';
  return loadIdxDataset(idxFile(dir, prefix, 'images-idx3'), idxFile(dir, prefix, 'labels-idx1'), FASHION_MNIST_CLASSES);
}
