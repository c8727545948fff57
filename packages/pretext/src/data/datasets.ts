// `--data` specs: a folder, a store file, or a built-in dataset name, resolved to a SampleStore.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadCifar10 } from './cifar.js';
import { loadFashionMnist } from './idx.js';
import { ingestImagesCached } from './ingest.js';
import { dataCacheDir } from './locations.js';
import { loadStore, type SampleStore } from './store.js';
import { syntheticStore } from './synthetic/index.js';

export type Split = 'train' | 'test';

export const builtinDatasets = {
  'fashion-mnist': 'Fashion-MNIST from Debian dataset-fashion-mnist (28x28 grayscale, 10 classes)',
  cifar10: 'CIFAR-10 (binary, pickle or JPEG folders; $CIFAR10_DIR or ../shared/datasets)',
  synthetic: 'procedural 3D scenes rendered on the fly (unlabeled, 32x32 by default)',
} as const;

export interface DatasetOptions {
  split?: Split;
  /** Side for folders being ingested (default: the images' own size when they share one, else 64) and for synthetic scenes. */
  size?: number;
  /** Synthetic scenes per split. */
  syntheticCount?: number;
  log?: (line: string) => void;
}

/** The evaluation split's folder names, in order of preference. */
const EVAL_FOLDERS = ['test', 'val'];

/**
 * The folder a split of a folder spec reads: `train/` for train, `test/` (else `val/`) for test
 * when the folder has `train/` and one of those; otherwise the folder itself for both splits.
 */
export function splitFolder(folder: string, split: Split): { folder: string; split: boolean } {
  const evalFolder = EVAL_FOLDERS.map((name) => join(folder, name)).find((dir) => isFolder(dir));
  if (!isFolder(join(folder, 'train')) || !evalFolder) return { folder, split: false };
  return { folder: split === 'train' ? join(folder, 'train') : evalFolder, split: true };
}

const isFolder = (path: string): boolean => statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;

/**
 * Resolves a `--data` spec. A folder with `train/` and `test/` (or `val/`) subfolders is split by
 * them; the store's `origin` names what was read (e.g. `cifar10:test`, the folder, the store file).
 */
export async function resolveDataset(spec: string, options: DatasetOptions = {}): Promise<SampleStore> {
  const split = options.split ?? 'train';
  const store = await loadSpec(spec, split, options);
  store.origin ??= builtinDatasets[spec as keyof typeof builtinDatasets] ? `${spec}:${split}` : resolve(spec);
  return store;
}

async function loadSpec(spec: string, split: Split, options: DatasetOptions): Promise<SampleStore> {
  if (spec === 'fashion-mnist') return loadFashionMnist({ split });
  if (spec === 'cifar10') return loadCifar10({ split, log: options.log });
  if (spec === 'synthetic') {
    const count = options.syntheticCount ?? (split === 'train' ? 10000 : 2000);
    return syntheticStore(count, options.size ?? 32, split === 'train' ? 1 : 1_000_000_000);
  }
  if (!existsSync(spec)) {
    throw new Error(`--data '${spec}' is neither a folder, a store file, nor one of ${Object.keys(builtinDatasets).join(', ')}`);
  }
  if (statSync(spec).isFile()) return loadStore(spec);
  const { folder, split: isSplit } = splitFolder(spec, split);
  options.log?.(
    isSplit
      ? `data: the ${split === 'train' ? 'training' : 'evaluation'} split is ${resolve(folder)}`
      : `data: ${resolve(folder)} has no train/ and test/ (or val/) subfolders: all of it is the ${split} split`,
  );
  const cacheDir = join(dataCacheDir(), 'stores');
  const key = `${resolve(folder)}:${options.size ?? 'auto'}`;
  const { store } = await ingestImagesCached({ source: folder, size: options.size, cacheDir, key, log: options.log });
  store.origin = resolve(folder);
  return store;
}
