// CIFAR-10 in its three common forms:
//  - binary: data_batch_{1..5}.bin / test_batch.bin, records of 1 label byte + 3072 CHW bytes;
//  - python: data_batch_{1..5} / test_batch, pickled dicts with b'data' (N x 3072 uint8) and b'labels';
//  - JPEG class folders: <root>/{train,test}/<class>/*.jpg, ingested (and cached) with ingestImages.
// The JPEG set ships as ../shared/datasets/cifar10/cifar10-jpg.tar.gz next to the repository and is
// unpacked once into the data cache; $CIFAR10_DIR may point at any of the three forms instead.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import * as torch from '@pretext/torch';
import { ingestImagesCached } from './ingest.js';
import { dataCacheDir, sharedDatasetsDir } from './locations.js';
import { asNumpyArray, pickleText, unpickle, type PickleDict } from './pickle.js';
import type { IngestCommonOptions } from './source.js';
import type { SampleStore } from './store.js';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const SIDE = 32;
const PIXELS = SIDE * SIDE;
const RECORD_BYTES = 1 + 3 * PIXELS;

export type CifarSplit = 'train' | 'test';
export type CifarFormat = 'binary' | 'python' | 'jpeg';

const batchNames = (split: CifarSplit): string[] => (split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}`) : ['test_batch']);

/**
 * Writes the CHW planes (3 x 1024) of `count` images into NHWC `target` at image `offset`. Image i
 * starts at byte `sourceStart + i * sourceStride` of `source` (records may carry label bytes).
 */
function chwToHwc(source: Uint8Array, sourceStride: number, sourceStart: number, count: number, target: Uint8Array, offset: number): void {
  if (count === 0) return;
  const hwc = torch.tidy(() =>
    torch
      .fromTypedArray(source.subarray(0, count * sourceStride), [count, sourceStride])
      .narrow(1, sourceStart, 3 * PIXELS)
      .view([count, 3, SIDE, SIDE])
      .permute([0, 2, 3, 1])
      .toTypedArray(),
  );
  target.set(hwc as Uint8Array, offset * 3 * PIXELS);
}

interface Batch {
  name: string;
  count: number;
  /** Copies the batch's images (NHWC) into `images` from image `offset`, and its labels likewise. */
  copyInto(images: Uint8Array, labels: Int32Array, offset: number): void;
}

function combineBatches(batches: Batch[], classNames: string[]): SampleStore {
  const n = batches.reduce((sum, batch) => sum + batch.count, 0);
  const images = new Uint8Array(n * 3 * PIXELS);
  const labels = new Int32Array(n);
  const paths: string[] = [];
  let offset = 0;
  for (const batch of batches) {
    batch.copyInto(images, labels, offset);
    for (let i = 0; i < batch.count; i++) paths.push(`${batch.name}#${i}`);
    offset += batch.count;
  }
  return { images, n, height: SIDE, width: SIDE, channels: 3, labels, classNames, paths };
}

function readBinaryBatch(path: string): Batch {
  const bytes = readFileSync(path);
  if (bytes.length % RECORD_BYTES !== 0)
    throw new Error(`${path}: size ${bytes.length} is not a multiple of the ${RECORD_BYTES}-byte CIFAR record`);
  const count = bytes.length / RECORD_BYTES;
  return {
    name: basename(path),
    count,
    copyInto(images, labels, offset) {
      for (let i = 0; i < count; i++) labels[offset + i] = bytes[i * RECORD_BYTES];
      chwToHwc(bytes, RECORD_BYTES, 1, count, images, offset);
    },
  };
}

/** Reads CIFAR-10 binary batch files (`data_batch_1.bin`...). */
export function readCifarBinary(paths: string[], classNames = CIFAR10_CLASSES): SampleStore {
  return combineBatches(paths.map(readBinaryBatch), classNames);
}

function readPickleDict(path: string): PickleDict {
  const value = unpickle(readFileSync(path));
  if (!(value instanceof Map)) throw new Error(`${path}: the pickle does not hold a dict`);
  return value;
}

function readPythonBatch(path: string): Batch {
  const dict = readPickleDict(path);
  const data = asNumpyArray(dict.get('data'));
  const labelList = dict.get('labels') ?? dict.get('fine_labels');
  if (data.dtype !== 'u1' || data.shape.length !== 2 || data.shape[1] !== 3 * PIXELS) {
    throw new Error(`${path}: expected data uint8 N x ${3 * PIXELS}, got ${data.dtype} ${data.shape.join('x')}`);
  }
  if (!Array.isArray(labelList) || labelList.length !== data.shape[0]) throw new Error(`${path}: labels missing or of the wrong length`);
  const count = data.shape[0];
  return {
    name: basename(path),
    count,
    copyInto(images, labels, offset) {
      labels.set(labelList as number[], offset);
      chwToHwc(data.data, 3 * PIXELS, 0, count, images, offset);
    },
  };
}

/** Reads CIFAR-10 python batch files (pickled dicts, `data_batch_1`...). */
export function readCifarPython(paths: string[], classNames = CIFAR10_CLASSES): SampleStore {
  return combineBatches(paths.map(readPythonBatch), classNames);
}

/** Where a CIFAR-10 form lives under `dir` (also looking in the archives' usual subfolders). */
export function detectCifarFormat(dir: string): { format: CifarFormat; root: string } | undefined {
  const candidates: { format: CifarFormat; root: string; marker: string }[] = [
    { format: 'binary', root: dir, marker: 'data_batch_1.bin' },
    { format: 'binary', root: join(dir, 'cifar-10-batches-bin'), marker: 'data_batch_1.bin' },
    { format: 'python', root: dir, marker: 'data_batch_1' },
    { format: 'python', root: join(dir, 'cifar-10-batches-py'), marker: 'data_batch_1' },
    { format: 'jpeg', root: dir, marker: 'train' },
    { format: 'jpeg', root: join(dir, 'cifar10'), marker: 'train' },
  ];
  const found = candidates.find((candidate) => existsSync(join(candidate.root, candidate.marker)));
  return found && { format: found.format, root: found.root };
}

/** Class names from batches.meta.txt (binary) or batches.meta (python), else the standard list. */
function cifarClassNames(format: CifarFormat, root: string): string[] {
  if (format === 'binary' && existsSync(join(root, 'batches.meta.txt'))) {
    const names = readFileSync(join(root, 'batches.meta.txt'), 'utf8')
      .split('\n')
      .map((name) => name.trim())
      .filter(Boolean);
    if (names.length > 0) return names;
  }
  if (format === 'python' && existsSync(join(root, 'batches.meta'))) {
    const names = readPickleDict(join(root, 'batches.meta')).get('label_names');
    if (Array.isArray(names)) return names.map(pickleText);
  }
  return CIFAR10_CLASSES;
}

/** The packed JPEG set next to the repository. */
export const defaultCifar10Tarball = (): string => join(sharedDatasetsDir(), 'cifar10', 'cifar10-jpg.tar.gz');

/**
 * Unpacks the CIFAR-10 JPEG tarball once into `<cacheDir>/cifar10` (train/ and test/ class folders)
 * and returns that folder. Unpacking goes through a temporary folder and a rename, so an
 * interrupted run leaves nothing half-written behind.
 */
export function ensureCifar10Jpeg(cacheDir = dataCacheDir(), tarball = defaultCifar10Tarball()): string {
  const target = join(resolve(cacheDir), 'cifar10');
  if (existsSync(join(target, 'train')) && existsSync(join(target, 'test'))) return target;
  if (!existsSync(tarball)) {
    throw new Error(
      `CIFAR-10 JPEG tarball not found at ${tarball}; put it there, or set CIFAR10_DIR to a CIFAR-10 folder (binary, python or JPEG)`,
    );
  }
  torch.makeDirectory(cacheDir);
  const temp = mkdtempSync(join(cacheDir, '.cifar10-unpack-'));
  try {
    const result = spawnSync('tar', ['xzf', tarball, '-C', temp], { encoding: 'utf8' });
    if (result.error) throw new Error(`cannot run tar to unpack ${tarball}: ${result.error.message}`);
    if (result.status !== 0) throw new Error(`tar failed to unpack ${tarball}: ${result.stderr.trim()}`);
    if (!existsSync(join(temp, 'cifar10', 'train'))) throw new Error(`${tarball} does not contain cifar10/train`);
    try {
      renameSync(join(temp, 'cifar10'), target);
    } catch (error) {
      if (!existsSync(join(target, 'train'))) throw error; // else another process unpacked it first
    }
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
  return target;
}

export interface LoadCifar10Options extends Pick<IngestCommonOptions, 'onProgress' | 'log' | 'concurrency'> {
  split: CifarSplit;
  /** A CIFAR-10 folder in any form; default $CIFAR10_DIR, else the unpacked JPEG tarball. */
  dir?: string;
  /** Where the JPEG set is unpacked and its stores cached (default $PRETEXT_DATA or ~/.cache/pretext-data). */
  cacheDir?: string;
}

/** Loads a CIFAR-10 split as 32x32 RGB with labels 0..9 (classes in the standard order). */
export async function loadCifar10(options: LoadCifar10Options): Promise<SampleStore> {
  const cacheDir = options.cacheDir ?? dataCacheDir();
  const dir = options.dir ?? process.env.CIFAR10_DIR ?? ensureCifar10Jpeg(cacheDir);
  const found = detectCifarFormat(dir);
  if (!found) throw new Error(`no CIFAR-10 data found in ${dir} (expected data_batch_1.bin, data_batch_1, or train/<class>/ folders)`);
  const { format, root } = found;
  if (format === 'jpeg') {
    const { store } = await ingestImagesCached({
      source: join(root, options.split),
      size: SIDE,
      cacheDir,
      prefix: `cifar10-${options.split}-`,
      tagLength: 8,
      onProgress: options.onProgress,
      log: options.log,
      concurrency: options.concurrency,
    });
    return store;
  }
  const classNames = cifarClassNames(format, root);
  const suffix = format === 'binary' ? '.bin' : '';
  const paths = batchNames(options.split).map((name) => join(root, name + suffix));
  const missing = paths.filter((path) => !existsSync(path));
  if (missing.length > 0) throw new Error(`CIFAR-10 ${format} files missing: ${missing.join(', ')}`);
  return format === 'binary' ? readCifarBinary(paths, classNames) : readCifarPython(paths, classNames);
}
