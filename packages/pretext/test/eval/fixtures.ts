// Generated feature sets with known structure for the protocol tests.
import { fromTypedArray } from '@pretext/torch';
import type { SampleStore } from '../../src/data/store.js';
import type { LabeledFeatures } from '../../src/eval/metrics.js';
import { join } from 'node:path';
import { seededRandom } from '../../src/util/random.js';
import { noiseImage, writePng } from '../data/fixtures.js';
import { tempDir as temporaryFolder } from '../temp.js';

/** A fresh temporary folder, removed when the test file ends. */
export function tempDir(prefix: string): string {
  return temporaryFolder(`eval-${prefix}`);
}

/** Standard normal draws (Box-Muller) from a seeded uniform generator. */
export function gaussian(random: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

export interface ClusterOptions {
  classes: number;
  perClass: number;
  dims: number;
  /** Distance of each class center from the origin, in units of the noise std. */
  separation: number;
  seed: number;
  /** Replace the labels with uniform random ones (no structure to find). */
  randomLabels?: boolean;
  /** Shape of each sample (default [dims]); its size must equal dims. */
  sampleShape?: number[];
}

/** Gaussian clusters around well separated centers (a shared seed gives train and test the same centers). */
export function clusters(options: ClusterOptions, sampleSeed: number): LabeledFeatures {
  const { classes, perClass, dims, separation } = options;
  const centerNoise = gaussian(seededRandom(options.seed));
  const centers = Array.from({ length: classes }, () => {
    const v = Array.from({ length: dims }, centerNoise);
    const norm = Math.hypot(...v);
    return v.map((x) => (x / norm) * separation);
  });
  const random = seededRandom(sampleSeed);
  const noise = gaussian(random);
  const n = classes * perClass;
  const data = new Float32Array(n * dims);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    labels[i] = options.randomLabels ? Math.floor(random() * classes) : c;
    for (let d = 0; d < dims; d++) data[i * dims + d] = centers[c][d] + noise();
  }
  return {
    features: fromTypedArray(data, [n, ...(options.sampleShape ?? [dims])]),
    labels,
    classNames: Array.from({ length: classes }, (_, c) => `class${c}`),
  };
}

/** A small in-memory store of random pixels with labels cycling through `classes`. */
export function randomStore(n: number, side: number, channels: 1 | 3, classes: number, seed = 0): SampleStore {
  const random = seededRandom(seed);
  return {
    images: Uint8Array.from({ length: n * side * side * channels }, () => Math.floor(random() * 256)),
    n,
    height: side,
    width: side,
    channels,
    labels: Int32Array.from({ length: n }, (_, i) => i % classes),
    classNames: Array.from({ length: classes }, (_, c) => `c${c}`),
    paths: Array.from({ length: n }, (_, i) => `img/${i}.png`),
  };
}

/**
 * An RGB image folder split into train/ and val/, two classes that differ in brightness ('dark',
 * 'light'), 8 train and 4 val PNGs of side x side each.
 */
export async function writeBrightnessFolder(dir: string, side: number): Promise<void> {
  for (const [split, count] of [
    ['train', 8],
    ['val', 4],
  ] as const) {
    for (const [label, name] of ['dark', 'light'].entries()) {
      for (let i = 0; i < count; i++) {
        const pixels = noiseImage(side, side, 100 * label + i + (split === 'val' ? 50 : 0)).map((v) => (label ? 128 + (v >> 1) : v >> 1));
        await writePng(join(dir, split, name, `${i}.png`), Buffer.from(pixels), side, side);
      }
    }
  }
}
