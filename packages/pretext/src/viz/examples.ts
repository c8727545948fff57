// A few samples of a store as a task asks about them, and what a trained model answers: the
// pictures `pretext show` writes and Pretext Studio's task cards. Everything comes from the task
// contract (create, epochOrder, prepare, answers, picture), so a new task needs nothing here.
import * as torch from '@pretext/torch';
import { DataLoader, disposeBatch } from '../data/loader.js';
import type { SampleStore } from '../data/store.js';
import { allRows } from '../eval/metrics.js';
import { createBackbone } from '../models/index.js';
import { isClassAnswer, type Answer, type PretextTask, type TaskInstance, type TaskPicture } from '../tasks/task.js';
import type { Pretrained } from '../train/pretrained.js';
import { seededRandom, shuffled } from '../util/random.js';
import { ALONE } from '../util/shards.js';

export interface ExamplesOptions {
  task: PretextTask;
  store: SampleStore;
  /** A run of this task: its modules prepare the batch and answer it. Default: a fresh model, no answers. */
  pretrained?: Pretrained;
  /** Items to draw (a video task's item is several frames). */
  count: number;
  /** Picks the samples (and the task's random draws): another seed, other examples. */
  seed: number;
  /** Default: the run's side, else the task's default, else the store's. */
  imageSize?: number;
}

export interface Examples {
  /** Panels N x C x H x W in [0, 1]; the caller disposes them. */
  picture: TaskPicture;
  /** `k/n right` or a mean score, with a checkpoint. */
  summary?: string;
}

/** `k/n right` for class answers, the mean score for image answers. */
export function answerSummary(answers: Answer[]): string {
  const classes = answers.filter(isClassAnswer);
  if (classes.length) return `${classes.filter((a) => a.correct).length}/${classes.length} right`;
  const scores = answers.flatMap((a) => ('score' in a && a.score ? [a.score] : []));
  if (!scores.length) return `${answers.length} answers`;
  return `mean ${scores[0].name} ${(scores.reduce((t, s) => t + s.value, 0) / scores.length).toFixed(2)}`;
}

/** Side the examples are drawn at: the run's, else the task's default (undefined: the store's own). */
export const examplesImageSize = (task: PretextTask, pretrained?: Pretrained): number | undefined =>
  pretrained?.imageSize ?? (task.defaults.imageSize as number | undefined);

/** Samples a fresh model's epoch-start hook sees (clustering tasks label them before the first batch). */
const EPOCH_SAMPLES = 2048;

/** Runs a fresh model's epoch-start hook over a seeded sample of the store, as the trainer does before epoch 1. */
async function startEpoch(instance: TaskInstance, store: SampleStore, imageSize: number | undefined, seed: number): Promise<void> {
  if (!instance.onEpochStart) return;
  const indices = shuffled(allRows(store.n), seededRandom(seed)).subarray(0, Math.min(store.n, EPOCH_SAMPLES)).sort();
  async function* batches(options: { batchSize?: number } = {}) {
    const loader = new DataLoader(store, {
      batchSize: options.batchSize ?? 256,
      shuffle: false,
      indices,
      outputSize: imageSize,
      workers: 0,
    });
    try {
      yield* loader.epoch(0);
    } finally {
      await loader.close();
    }
  }
  await instance.onEpochStart({
    epoch: 0,
    store,
    indices,
    resumed: false,
    log: () => undefined,
    batches,
    gatherRows: async (rows) => rows.clone(),
    shards: ALONE,
    resetOptimizerState: () => undefined,
    record: () => undefined,
  });
}

export async function taskExamples(options: ExamplesOptions): Promise<Examples> {
  const { task, store, pretrained, count, seed } = options;
  if (pretrained && pretrained.config.task !== task.name)
    throw new Error(`the checkpoint was trained on '${pretrained.config.task}', not '${task.name}'`);
  const imageSize = options.imageSize ?? examplesImageSize(task, pretrained);
  const taskOptions = task.options.parse(task.defaults.taskOptions ?? {});
  const instance =
    pretrained?.instance ??
    task.create(
      createBackbone(task.defaults.backbone ?? 'nin4', task.inputChannels?.(store.channels, taskOptions) ?? store.channels),
      taskOptions,
      { inChannels: store.channels, imageSize: imageSize ?? store.height, store },
    );
  if (!pretrained) await startEpoch(instance, store, imageSize, seed);
  const perItem = task.data?.samplesPerItem ?? 1;
  const loader = new DataLoader(store, {
    batchSize: count * perItem,
    seed,
    dropLast: false,
    normalize: pretrained?.normalization ?? 'dataset',
    outputSize: imageSize,
    workers: 0,
  });
  // Undo the normalization the inputs got (the run's, else the store's own).
  const { mean, std } = pretrained?.normalization ?? loader.stats();
  const display = (images: torch.Tensor) =>
    images
      .mul(torch.tensor(std).view([1, -1, 1, 1]))
      .add(torch.tensor(mean).view([1, -1, 1, 1]))
      .clamp(0, 1);
  const iterator = loader.epoch(seed, 0, instance.epochOrder?.(seed, allRows(store.n)));
  const { value: batch, done } = await iterator.next();
  await iterator.return?.();
  await loader.close();
  if (done || !batch) throw new Error(`the data has fewer than ${count * perItem} samples`);
  try {
    return torch.noGrad(() =>
      torch.tidy(() => {
        const prepared = instance.prepare(batch, new torch.Generator(seed));
        const answers = pretrained ? instance.answers(prepared) : undefined;
        return { picture: task.picture(prepared, answers, display), summary: answers && answerSummary(answers) };
      }),
    );
  } finally {
    disposeBatch(batch);
  }
}
