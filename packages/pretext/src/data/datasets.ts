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
  /** Side for folders being ingested and for synthetic scenes. */
  size?: number;
  /** Synthetic scenes per split. */
  syntheticCount?: number;
  log?: (line: string) => void;
}

/** Resolves a `--data` spec. A folder with train/ and test/ subfolders is split by them. */
export async function resolveDataset(spec: string, options: DatasetOptions = {}): Promise<SampleStore> {
  const split = options.split ?? 'train';
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
  const splitDir = join(spec, split);
  const source = existsSync(join(spec, 'train')) && existsSync(join(spec, 'test')) ? splitDir : spec;
  const size = options.size ?? 64;
  const cacheDir = join(dataCacheDir(), 'stores');
  const { store } = await ingestImagesCached({ source, size, cacheDir, key: `${resolve(source)}:${size}`, log: options.log });
  return store;
}
