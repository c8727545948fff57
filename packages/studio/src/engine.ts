// The studio's work through pretext's library API: the user's data, trained runs, task examples and
// answers, answers on an uploaded image, and embedding maps with nearest neighbours. Everything
// that runs libtorch goes through one queue; embedding maps run as jobs and are cached on disk per
// checkpoint, layer and data.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { noGrad, tidy, type Tensor } from '@pretext/torch';
import { resolveDataset, type Split } from 'pretext/data/datasets';
import { sampleImage, type SampleStore } from 'pretext/data/store';
import { extractFeatures, loadFeatures, saveFeatures } from 'pretext/eval/features';
import { labelsOf, tensorIndex } from 'pretext/eval/metrics';
import { nearest, umapLayout } from 'pretext/eval/pictures';
import { classColor } from 'pretext/viz/svg';
import { getTask, tasks } from 'pretext/tasks/registry';
import type { PretextTask, TaskPicture } from 'pretext/tasks/task';
import { findCheckpoint, loadPretrained, type Pretrained } from 'pretext/train/pretrained';
import { subsetIndices } from 'pretext/util/random';
import { examplesImageSize, taskExamples } from 'pretext/viz/examples';
import { toRgbBytes } from 'pretext/viz/grid';
import { HttpError } from './http.js';
import { Jobs, SerialQueue, type JobView, type Report } from './jobs.js';
import { listRuns, readRun } from './runs.js';
import { resolveInside } from './paths.js';

export interface EngineOptions {
  runsDir: string;
  cacheDir: string;
  /** The `--data` spec examples, uploads' neighbours and embeddings read. */
  data: string;
  /** Synthetic scenes per split when the data is `synthetic` (rendered on the fly). */
  syntheticCount?: number;
  /** Largest decoded upload, in pixels. */
  maxPixels: number;
  log: (line: string) => void;
}

export interface Panel {
  /** A PNG data URL. */
  image: string;
  caption: string;
}

export interface PictureView {
  panels: Panel[];
  columns: number;
  summary?: string;
}

export interface TaskInfo {
  name: string;
  description: string;
  paper: string;
  backbone?: string;
  samplesPerItem?: number;
  sources?: string[];
  /** Runs of this task that have a checkpoint, newest first. */
  runs: string[];
}

export interface EmbeddingPoint {
  x: number;
  y: number;
  label: number;
  /** Sample index in the data store (for thumbnails). */
  index: number;
}

export interface EmbeddingMap {
  key: string;
  run: string;
  layer: string;
  data: string;
  split: Split;
  imageSize: number;
  dims: number;
  classNames: string[];
  colors: string[];
  points: EmbeddingPoint[];
}

export interface Neighbour {
  point: number;
  index: number;
  label: number;
  similarity: number;
}

const PANEL_CACHE = 64;

/** PNG data URLs of a picture's panels (N x C x H x W in [0, 1]) with their captions. */
async function pictureView(picture: TaskPicture, summary?: string): Promise<PictureView> {
  const images = toRgbBytes(picture.panels);
  const panels = await Promise.all(
    images.map(async ({ data, height, width }, i) => {
      const png = await sharp(Buffer.from(data), { raw: { width, height, channels: 3 } })
        .png()
        .toBuffer();
      return { image: `data:image/png;base64,${png.toString('base64')}`, caption: picture.captions[i] ?? '' };
    }),
  );
  return { panels, columns: picture.columns, summary };
}

export class Engine {
  readonly queue = new SerialQueue();
  readonly jobs = new Jobs(this.queue);
  private readonly stores = new Map<string, Promise<SampleStore>>();
  private readonly models = new Map<string, Pretrained>();
  private readonly features = new Map<string, Tensor>();

  constructor(readonly options: EngineOptions) {}

  /** The studio's data at a split and side (folders and synthetic scenes depend on the side). */
  store(split: Split, size?: number): Promise<SampleStore> {
    const key = `${split}:${size ?? ''}`;
    let store = this.stores.get(key);
    if (!store) {
      const { data, syntheticCount, log } = this.options;
      store = resolveDataset(data, { split, size, syntheticCount, log });
      store.catch(() => this.stores.delete(key));
      this.stores.set(key, store);
    }
    return store;
  }

  tasks(): TaskInfo[] {
    const runs = listRuns(this.options.runsDir).filter((r) => r.checkpoints.length);
    return Object.values(tasks).map((t: PretextTask) => ({
      name: t.name,
      description: t.description,
      paper: t.paper,
      backbone: t.defaults.backbone,
      samplesPerItem: t.data?.samplesPerItem,
      sources: t.data?.sources ? Object.keys(t.data.sources) : undefined,
      runs: runs.filter((r) => r.task === t.name).map((r) => r.name),
    }));
  }

  /** A run's best (else latest) checkpoint, as `sidecar path:mtime`: it names what a model answers with. */
  private checkpoint(run: string): { dir: string; stamp: string } {
    const dir = resolveInside(this.options.runsDir, run);
    try {
      const { sidecar } = findCheckpoint(dir);
      return { dir, stamp: `${sidecar}:${statSync(sidecar).mtimeMs}` };
    } catch (e) {
      throw new HttpError(409, `run '${run}' has no checkpoint yet (${(e as Error).message})`);
    }
  }

  /** A run's model at its best (else latest) checkpoint, kept while the checkpoint is unchanged. */
  model(run: string): Pretrained {
    const { dir, stamp: key } = this.checkpoint(run);
    let model = this.models.get(key);
    if (!model) {
      model = loadPretrained(dir);
      this.models.set(key, model);
      if (this.models.size > 4) this.models.delete(this.models.keys().next().value!);
    }
    return model;
  }

  private readonly pictures = new Map<string, PictureView>();

  /** What a task asks on `count` items of the data, and with `run` the model's answers. */
  examples(taskName: string, options: { seed: number; count: number; run?: string }): Promise<PictureView> {
    const task = getTask(taskName);
    const key = JSON.stringify([taskName, options, options.run && this.checkpoint(options.run).stamp]);
    const cached = this.pictures.get(key);
    if (cached) return Promise.resolve(cached);
    return this.queue.run(async () => {
      const pretrained = options.run ? this.model(options.run) : undefined;
      if (pretrained && pretrained.config.task !== task.name)
        throw new HttpError(400, `run '${options.run}' trained '${pretrained.config.task}', not '${task.name}'`);
      const imageSize = examplesImageSize(task, pretrained);
      const store = await this.store(pretrained ? 'test' : 'train', imageSize);
      const { picture, summary } = await taskExamples({ task, store, pretrained, count: options.count, seed: options.seed, imageSize });
      try {
        const view = await pictureView(picture, summary);
        this.pictures.set(key, view);
        if (this.pictures.size > PANEL_CACHE) this.pictures.delete(this.pictures.keys().next().value!);
        return view;
      } finally {
        picture.panels.dispose();
      }
    });
  }

  /** Every task with a trained run answers one uploaded image (decoded within the pixel limit). */
  async tryImage(bytes: Buffer, runs?: string[]): Promise<{ task: string; run?: string; view?: PictureView; note?: string }[]> {
    const meta = await sharp(bytes, { limitInputPixels: false })
      .metadata()
      .catch((e: Error) => {
        throw new HttpError(415, `the upload is not an image that can be decoded (${e.message})`);
      });
    if (!meta.width || !meta.height) throw new HttpError(415, 'the upload is not an image that can be decoded');
    if (meta.width * meta.height > this.options.maxPixels) {
      throw new HttpError(
        413,
        `the image is ${meta.width} x ${meta.height} pixels; the limit is ${this.options.maxPixels.toLocaleString('en-US')} pixels`,
      );
    }
    // Decode it once in full, so that a damaged file is refused here rather than by each task.
    await sharp(bytes, { limitInputPixels: this.options.maxPixels, failOn: 'error' })
      .resize(8, 8)
      .raw()
      .toBuffer()
      .catch((e: Error) => {
        throw new HttpError(415, `the image could not be decoded (${e.message})`);
      });
    const all = listRuns(this.options.runsDir).filter((r) => r.checkpoints.length && (!runs || runs.includes(r.name)));
    return this.queue.run(async () => {
      const answers = [];
      for (const task of Object.values(tasks)) {
        const run = all.find((r) => r.task === task.name);
        if (!run) {
          answers.push({ task: task.name, note: 'no trained run of this task in the runs folder yet' });
          continue;
        }
        try {
          const pretrained = this.model(run.name);
          if (pretrained.instance.epochOrder || task.data?.samplesPerItem)
            throw new Error('this task draws its own samples from a dataset (clusters, frame tuples), not single images');
          const store = await uploadStore(bytes, pretrained, this.options.maxPixels);
          const { picture, summary } = await taskExamples({ task, store, pretrained, count: 1, seed: 0 });
          try {
            answers.push({ task: task.name, run: run.name, view: await pictureView(picture, summary) });
          } finally {
            picture.panels.dispose();
          }
        } catch (e) {
          answers.push({ task: task.name, run: run.name, note: (e as Error).message });
        }
      }
      return answers;
    });
  }

  /** A sample of the data as a PNG (thumbnails of the embedding map and of neighbours). */
  async samplePng(split: Split, index: number, size?: number): Promise<Buffer> {
    const store = await this.store(split, size);
    if (index >= store.n) throw new HttpError(404, `sample ${index} does not exist (the data has ${store.n})`);
    return sharp(Buffer.from(sampleImage(store, index)), { raw: { width: store.width, height: store.height, channels: store.channels } })
      .png()
      .toBuffer();
  }

  /** The layers of a run's backbone, for the embedding page. */
  layers(run: string): string[] {
    return [...this.model(run).backbone.blockNames];
  }

  private embeddingKey(run: string, layer: string, points: number): { key: string; dir: string } {
    const id = JSON.stringify({ checkpoint: this.checkpoint(run).stamp, layer, data: this.options.data, points });
    const key = createHash('sha256').update(id).digest('hex').slice(0, 20);
    return { key, dir: join(this.options.cacheDir, 'embeddings', key) };
  }

  /** Starts (or joins, or finds cached) the embedding map of `points` samples of the test split at a run's layer. */
  startEmbedding(run: string, layer: string, points: number): JobView {
    const { key, dir } = this.embeddingKey(run, layer, points);
    return this.jobs.start(key, async (report: Report) => {
      if (existsSync(join(dir, 'map.json'))) return;
      report('loading the checkpoint', 0);
      const pretrained = this.model(run);
      if (!pretrained.backbone.blockNames.includes(layer))
        throw new HttpError(400, `layer '${layer}' is not one of ${pretrained.backbone.blockNames.join(', ')}`);
      const split: Split = 'test';
      const store = await this.store(split, pretrained.imageSize);
      const indices = subsetIndices(store.n, points, 0);
      report(`extracting ${layer} features of ${indices.length} images`, 0.05);
      const features = await extractFeatures(pretrained.backbone, store, {
        block: layer,
        normalization: pretrained.normalization,
        imageSize: pretrained.imageSize,
        indices,
      });
      const labeled = labelsOf(store, indices);
      report('UMAP', 0.4);
      const { rows, coordinates } = await umapLayout(features, {
        maxPoints: indices.length,
        onProgress: (f) => report('UMAP', 0.4 + 0.6 * f),
      });
      const map: EmbeddingMap = {
        key,
        run,
        layer,
        data: this.options.data,
        split,
        imageSize: pretrained.imageSize,
        dims: features.shape[1],
        classNames: labeled.classNames,
        colors: labeled.classNames.map((_, k) => classColor(k)),
        points: Array.from(rows, (row, i) => ({
          x: coordinates[i][0],
          y: coordinates[i][1],
          label: labeled.labels[row],
          index: indices[row],
        })),
      };
      // The features in map-point order, so that a point's number is its row.
      const ordered = tidy(() => features.indexSelect(0, tensorIndex(rows)));
      features.dispose();
      mkdirSync(dir, { recursive: true });
      saveFeatures(join(dir, 'features.safetensors'), {
        features: ordered,
        labels: Int32Array.from(map.points, (p) => p.label),
        classNames: labeled.classNames,
        paths: map.points.map((p) => store.paths[p.index] ?? String(p.index)),
        meta: { run, layer, data: this.options.data, split },
      });
      this.features.set(key, ordered);
      writeFileSync(join(dir, 'map.json.tmp'), JSON.stringify(map));
      renameSync(join(dir, 'map.json.tmp'), join(dir, 'map.json'));
    });
  }

  embedding(key: string): EmbeddingMap {
    const path = join(this.embeddingDir(key), 'map.json');
    if (!existsSync(path)) throw new HttpError(404, `no embedding map '${key}' (start one first)`);
    return JSON.parse(readFileSync(path, 'utf8')) as EmbeddingMap;
  }

  private embeddingDir(key: string): string {
    if (!/^[0-9a-f]{20}$/.test(key)) throw new HttpError(400, `'${key}' is not an embedding key`);
    return join(this.options.cacheDir, 'embeddings', key);
  }

  /** The `k` points nearest to point `point` of a map in feature space (cosine), itself left out. */
  neighbours(key: string, point: number, k: number): Neighbour[] {
    const map = this.embedding(key);
    if (point >= map.points.length) throw new HttpError(404, `the map has ${map.points.length} points, not ${point + 1}`);
    let features = this.features.get(key);
    if (!features) {
      features = loadFeatures(join(this.embeddingDir(key), 'features.safetensors')).features;
      this.features.set(key, features);
    }
    const bank = features;
    const found = noGrad(() => tidy(() => nearest(bank.narrow(0, point, 1), bank, Math.min(k + 1, map.points.length))));
    return found.indices[0]
      .map((row, j) => ({ row, similarity: found.similarities[0][j] }))
      .filter(({ row }) => row !== point)
      .slice(0, k)
      .map(({ row, similarity }) => ({ point: row, index: map.points[row].index, label: map.points[row].label, similarity }));
  }

  runLayers(run: string): { layers: string[]; checkpoint: string } {
    readRun(this.options.runsDir, run);
    return { layers: this.layers(run), checkpoint: this.model(run).checkpoint };
  }
}

/**
 * A one-image store from an upload, in the run's channels and side (cropped to a centered square);
 * sharp decodes it with the pixel limit and applies the EXIF orientation.
 */
async function uploadStore(bytes: Buffer, pretrained: Pretrained, maxPixels: number): Promise<SampleStore> {
  const side = pretrained.imageSize;
  const channels = (pretrained.normalization.mean.length === 1 ? 1 : 3) as 1 | 3;
  let image = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error' }).rotate().removeAlpha().resize(side, side, { fit: 'cover' });
  image = channels === 1 ? image.grayscale() : image.toColourspace('srgb');
  const { data, info } = await image
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch((e: Error) => {
      throw new HttpError(415, `the image could not be decoded (${e.message})`);
    });
  if (info.channels !== channels) throw new HttpError(415, `the image decoded to ${info.channels} channels, expected ${channels}`);
  return {
    images: new Uint8Array(data.buffer, data.byteOffset, data.length),
    n: 1,
    height: side,
    width: side,
    channels,
    labels: Int32Array.of(-1),
    classNames: [],
    paths: ['upload'],
  };
}
