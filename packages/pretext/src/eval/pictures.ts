// Pictures of a feature space: a 2-D UMAP map colored by class with thumbnails (SVG), a nearest-
// neighbor retrieval grid (PNG) and a confusion-matrix heatmap (SVG).
import { dirname, join } from 'node:path';
import { makeDirectory, nn, noGrad, tidy, type Tensor } from '@pretext/torch';
import sharp from 'sharp';
import { UMAP } from 'umap-js';
import { sampleImage, type SampleStore } from '../data/store.js';
import { allRows, tensorIndex, type LabeledFeatures } from './metrics.js';
import { seededRandom, shuffled } from '../util/random.js';
import { classColor, confusionHeatmapSvg, escapeXml, svgDocument, writeText } from '../viz/svg.js';

/** Where each feature row's image lives: row r shows sample indices[r] of the store. */
export interface ImageSource {
  store: SampleStore;
  indices: Int32Array;
}

/** One sample as 8-bit RGB, h x w x 3. */
function rgbPixels(source: ImageSource, row: number): { pixels: Uint8Array; height: number; width: number } {
  const { store } = source;
  const raw = sampleImage(store, source.indices[row]);
  if (store.channels === 3) return { pixels: raw, height: store.height, width: store.width };
  const rgb = new Uint8Array(raw.length * 3);
  raw.forEach((v, i) => rgb.fill(v, i * 3, i * 3 + 3));
  return { pixels: rgb, height: store.height, width: store.width };
}

async function pngDataUri(source: ImageSource, row: number): Promise<string> {
  const { pixels, height, width } = rgbPixels(source, row);
  const png = await sharp(Buffer.from(pixels), { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

/** Indices of the `k` most cosine-similar bank rows of each query row (and the similarities). */
export function nearest(queries: Tensor, bank: Tensor, k: number): { indices: number[][]; similarities: number[][] } {
  return noGrad(() =>
    tidy(() => {
      const q = nn.functional.normalize(queries.flatten(1));
      const b = nn.functional.normalize(bank.flatten(1));
      const [values, indices] = q.mm(b.t()).topk(k, 1, true, true);
      return { indices: indices.tolist() as number[][], similarities: values.tolist() as number[][] };
    }),
  );
}

export interface EmbeddingMapOptions {
  /** The SVG file to write. */
  out: string;
  /** At most this many points (a seeded sample; default 2000). */
  maxPoints?: number;
  /** Thumbnails drawn over the map (default 24). */
  thumbnails?: number;
  nNeighbors?: number;
  seed?: number;
  title?: string;
}

export interface UmapLayoutOptions {
  /** At most this many points (a seeded sample; default 2000). */
  maxPoints?: number;
  nNeighbors?: number;
  seed?: number;
  /** Called with the fraction of optimization epochs done; the layout yields to the event loop between calls. */
  onProgress?: (fraction: number) => void;
}

/** UMAP (cosine neighbors) of a seeded sample of the feature rows: the rows and their 2-D coordinates. */
export async function umapLayout(
  features: Tensor,
  options: UmapLayoutOptions = {},
): Promise<{ rows: Int32Array; coordinates: number[][]; random: () => number }> {
  const n = features.shape[0];
  const random = seededRandom(options.seed ?? 0);
  const rows = shuffled(allRows(n), random)
    .subarray(0, Math.min(n, options.maxPoints ?? 2000))
    .sort();
  const nNeighbors = Math.min(options.nNeighbors ?? 15, rows.length - 1);
  if (nNeighbors < 2) throw new Error(`embedding map: needs at least 3 points, got ${rows.length}`);
  const points = tidy(() => nn.functional.normalize(features.indexSelect(0, tensorIndex(rows)).flatten(1)));
  const knn = nearest(points, points, nNeighbors);
  const vectors = points.tolist() as number[][];
  points.dispose();
  const umap = new UMAP({ nComponents: 2, nNeighbors, minDist: 0.1, random });
  // Euclidean distance between unit vectors, sqrt(2 - 2 cos), matching UMAP's default metric on them.
  umap.setPrecomputedKNN(
    knn.indices,
    knn.similarities.map((row) => row.map((s) => Math.sqrt(Math.max(0, 2 - 2 * s)))),
  );
  const epochs = umap.initializeFit(vectors);
  for (let epoch = 0; epoch < epochs; epoch++) {
    umap.step();
    if (epoch % 20 === 19) {
      options.onProgress?.((epoch + 1) / epochs);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return { rows, coordinates: umap.getEmbedding(), random };
}

/** UMAP of the features (cosine neighbors), points colored by class, a few thumbnails. Returns the 2-D coordinates. */
export async function embeddingMap(
  set: LabeledFeatures,
  images: ImageSource | undefined,
  options: EmbeddingMapOptions,
): Promise<{ rows: Int32Array; coordinates: number[][] }> {
  const { rows, coordinates, random } = await umapLayout(set.features, options);

  const [size, margin, legendWidth] = [760, 30, 170];
  const xs = coordinates.map((p) => p[0]);
  const ys = coordinates.map((p) => p[1]);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x: number) => margin + ((x - minX) / (maxX - minX || 1)) * (size - 2 * margin);
  const sy = (y: number) => 50 + margin + ((y - minY) / (maxY - minY || 1)) * (size - 2 * margin);
  const body = [
    `<text x="${(size + legendWidth) / 2}" y="28" font-size="16" text-anchor="middle">${escapeXml(options.title ?? 'UMAP of the features')}</text>`,
  ];
  coordinates.forEach(([x, y], i) => {
    body.push(
      `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.6" fill="${classColor(set.labels[rows[i]])}" fill-opacity="0.75"/>`,
    );
  });
  if (images) {
    const thumb = 30;
    const picks = shuffled(allRows(rows.length), random).subarray(0, Math.min(rows.length, options.thumbnails ?? 24));
    for (const i of picks) {
      const [x, y] = [sx(coordinates[i][0]) - thumb / 2, sy(coordinates[i][1]) - thumb / 2];
      const color = classColor(set.labels[rows[i]]);
      body.push(
        `<image x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${thumb}" height="${thumb}" href="${await pngDataUri(images, rows[i])}" style="image-rendering:pixelated"/>`,
      );
      body.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${thumb}" height="${thumb}" fill="none" stroke="${color}" stroke-width="2"/>`,
      );
    }
  }
  set.classNames.forEach((name, k) => {
    const y = 70 + k * 20;
    body.push(`<circle cx="${size + 10}" cy="${y - 4}" r="5" fill="${classColor(k)}"/>`);
    body.push(`<text x="${size + 20}" y="${y}" font-size="12">${escapeXml(name)}</text>`);
  });
  writeText(options.out, svgDocument(size + legendWidth, size + 60, body));
  return { rows, coordinates };
}

export interface RetrievalGridOptions {
  /** The PNG file to write. */
  out: string;
  /** Query rows (default 8), drawn with `seed` from the queries. */
  queries?: number;
  /** Neighbors per query (default 8). */
  neighbors?: number;
  seed?: number;
  /** Pixel scale of each image (default 2). */
  scale?: number;
  /** Queries from another set (e.g. test against a train bank); default: from the bank, excluding each query itself. */
  querySet?: { features: LabeledFeatures; images: ImageSource };
}

/**
 * Rows of [query | its top neighbors by cosine similarity]; a green frame marks a neighbor of the
 * query's class, red another class. Returns the query and neighbor rows.
 */
export async function retrievalGrid(
  bank: LabeledFeatures,
  bankImages: ImageSource,
  options: RetrievalGridOptions,
): Promise<{ queries: number[]; neighbors: number[][] }> {
  const neighbors = options.neighbors ?? 8;
  const scale = options.scale ?? 2;
  const query = options.querySet ?? { features: bank, images: bankImages };
  const self = options.querySet === undefined;
  const random = seededRandom(options.seed ?? 0);
  const count = Math.min(options.queries ?? 8, query.features.labels.length);
  const queries = Array.from(shuffled(allRows(query.features.labels.length), random).subarray(0, count));
  const k = Math.min(neighbors + (self ? 1 : 0), bank.labels.length);
  const found = tidy(() => nearest(query.features.features.indexSelect(0, tensorIndex(queries)), bank.features, k));
  const lists = queries.map((q, r) => found.indices[r].filter((i) => !(self && i === q)).slice(0, neighbors));

  const { store } = bankImages;
  const [h, w] = [store.height * scale, store.width * scale];
  const frame = 3;
  const gap = 12;
  const cellW = w + 2 * frame + 2;
  const cellH = h + 2 * frame + 2;
  const width = cellW * (neighbors + 1) + gap;
  const height = cellH * queries.length;
  const canvas = new Uint8Array(width * height * 3).fill(255);
  const paint = (source: ImageSource, row: number, left: number, top: number, color: [number, number, number]) => {
    for (let y = 0; y < h + 2 * frame; y++) {
      for (let x = 0; x < w + 2 * frame; x++) canvas.set(color, ((top + y) * width + left + x) * 3);
    }
    const { pixels, width: sw } = rgbPixels(source, row);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const from = ((Math.floor(y / scale) * sw + Math.floor(x / scale)) * 3) | 0;
        canvas.set(pixels.subarray(from, from + 3), ((top + frame + y) * width + left + frame + x) * 3);
      }
    }
  };
  queries.forEach((q, r) => {
    const top = r * cellH + 1;
    paint(query.images, q, 1, top, [60, 60, 60]);
    lists[r].forEach((i, j) => {
      const same = bank.labels[i] === query.features.labels[q];
      paint(bankImages, i, cellW * (j + 1) + gap, top, same ? [40, 170, 60] : [220, 50, 50]);
    });
  });
  makeDirectory(dirname(options.out));
  await sharp(Buffer.from(canvas), { raw: { width, height, channels: 3 } })
    .png()
    .toFile(options.out);
  return { queries, neighbors: lists };
}

/** Writes the confusion matrix of a result as an SVG heatmap. */
export function confusionHeatmap(
  result: { confusion: number[][]; perClass: { className: string }[]; top1?: number },
  out: string,
  title?: string,
): string {
  const names = result.perClass.map((c) => c.className);
  const heading = title ?? `Confusion matrix${result.top1 === undefined ? '' : ` (top-1 ${result.top1.toFixed(2)}%)`}`;
  return writeText(out, confusionHeatmapSvg(result.confusion, names, heading));
}

/** The embedding map (embedding-map.svg) and retrieval grid (retrieval.png) of a feature set, into `dir`. */
export async function writeFeaturePictures(
  set: LabeledFeatures,
  images: ImageSource,
  dir: string,
  options: { seed?: number; title?: string } = {},
): Promise<string[]> {
  const map = join(dir, 'embedding-map.svg');
  const grid = join(dir, 'retrieval.png');
  await embeddingMap(set, images, { out: map, seed: options.seed, title: options.title });
  await retrievalGrid(set, images, { out: grid, seed: options.seed });
  return [map, grid];
}
