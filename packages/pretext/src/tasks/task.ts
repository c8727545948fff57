// The contract every pretext task implements, one file per task. The trainer only ever calls
// these members, so GAN tasks (several optimizer phases), DeepCluster (epoch hooks, samplers, task
// state), video tasks (tuples of frames) and tasks with two data sources fit without a branch in
// the trainer. Each hook is pinned by a test with a small fake task (test/train/contract.test.ts).
import { nn, type Generator, type Tensor } from '@pretext/torch';
import type { z } from 'zod';
import type { OptimizerConfig, ScheduleConfig, TrainSettings } from '../config/schema.js';
import type { Batch } from '../data/loader.js';
import type { SampleStore } from '../data/store.js';
import type { Backbone } from '../models/backbone.js';
import type { Shards } from '../util/shards.js';

/** What a task turned a batch into: model inputs, free labels, and anything show() needs. */
export interface PretextBatch {
  inputs: Tensor;
  targets: Tensor;
  /** Extra tensors a task keeps for its loss or for pictures (tile order, patch positions, masks...). */
  extra?: Record<string, Tensor>;
}

export interface StepResult {
  loss: Tensor;
  /** Scalars to log, e.g. pretext accuracy or PSNR; a step's tensors are read together, in one copy. */
  metrics: Record<string, Tensor | number>;
}

/**
 * One optimizer and the parameters it updates. Phases run in the order given, each on its own
 * step() call; while a phase runs, the other phases' parameters do not require grad, so one
 * phase's loss never writes gradients into another phase's parameters.
 */
export interface OptimizerPhase {
  name: string;
  parameters: nn.Parameter[];
  /** Runs on every `every`-th batch only (default 1): `every: k` on the generator gives k discriminator steps per generator step. */
  every?: number;
  /** Whether the phase runs now (e.g. no adversarial phase during an MSE-only warm-up). Default: always. */
  active?(progress: { epoch: number; step: number }): boolean;
}

export interface EpochContext {
  /** 0-based epoch about to run (onEpochStart) or just finished (onEpochEnd). */
  epoch: number;
  /** The training store and the samples of it the run uses (the --limit subset, or all). */
  store: SampleStore;
  indices: Int32Array;
  /** True when a resumed run re-enters this epoch part-way: state saved for the epoch is already in place. */
  resumed: boolean;
  log: (line: string) => void;
  /**
   * The run's training samples in `indices` order, without augmentation, normalized as in
   * training, for passes over the whole dataset (features for clustering). The caller disposes
   * each batch (disposeBatch). With `share`, only this rank's contiguous share of them, for a pass
   * split across data-parallel ranks and put back together with `gatherRows`.
   */
  batches(options?: { batchSize?: number; share?: boolean }): AsyncIterable<Batch>;
  /** Every rank's rows (dim 0) in rank order, as a new tensor; alone, a copy of its own. */
  gatherRows(rows: Tensor): Promise<Tensor>;
  /** This rank among the data-parallel ranks, with a sum across them (work on shares: k-means, PCA). */
  shards: Shards;
  /** Clears optimizer state (momentum, Adam moments) of these parameters in whichever phase holds them. */
  resetOptimizerState(parameters: nn.Parameter[]): void;
  /** Adds scalars to this epoch's logged metrics (metrics.jsonl and the epoch line). */
  record(metrics: Record<string, number>): void;
}

/** A class prediction for show(): per sample the target, the answer, and whether it was right. */
export interface ClassAnswer {
  target: number;
  predicted: number;
  correct: boolean;
}

/** An image prediction for show(): the model's output, normalized like the inputs (C x H x W), and its score. */
export interface ImageAnswer {
  image: Tensor;
  score?: { name: string; value: number };
}

export type Answer = ClassAnswer | ImageAnswer;

export const isClassAnswer = (a: Answer | undefined): a is ClassAnswer => a !== undefined && 'predicted' in a;
export const isImageAnswer = (a: Answer | undefined): a is ImageAnswer => a !== undefined && 'image' in a;

/** What a task keeps besides module weights (cluster assignments, PCA, class priors...), saved with every checkpoint. */
export interface TaskState {
  tensors?: Record<string, Tensor>;
  /** JSON-serializable values. */
  json?: unknown;
}

/** A network of a task whose block features the evaluation protocols can read, besides the backbone. */
export interface ProbeModule {
  module: Backbone;
  /** What the module sees of loader images (normalized RGB or gray). Default: the images as they are. */
  input?(images: Tensor): Tensor;
}

export interface TaskInstance {
  /** Every module to save and load, by name ('backbone', 'head', 'discriminator', ...). */
  readonly modules: Record<string, nn.Module>;
  /** Optimizer phases; most tasks have one, GANs two (generator, discriminator). */
  phases(): OptimizerPhase[];
  /**
   * Turns loader images into pretext inputs and targets, as batched tensor ops. `sources` holds a
   * batch of each further data source the task declares (PretextTask.data.sources).
   */
  prepare(batch: Batch, generator: Generator, sources?: Record<string, Batch>): PretextBatch;
  /** Loss and metrics of one optimizer phase on a prepared batch. */
  step(batch: PretextBatch, phase: string): StepResult;
  /** The model's answers on a prepared batch, for show(). */
  answers(batch: PretextBatch): Answer[];
  onEpochStart?(context: EpochContext): Promise<void> | void;
  onEpochEnd?(context: EpochContext): Promise<void> | void;
  /**
   * The store indices of an epoch, in order, when the task samples them itself (uniform over
   * clusters, frame tuples). With `data.samplesPerItem` s, every s consecutive indices form one
   * item. Return about as many items as `indices` has samples, so that the schedule's steps per
   * epoch hold. Must be a pure function of the epoch and the task state (for exact resume).
   * Undefined keeps the loader's shuffled order for that epoch.
   */
  epochOrder?(epoch: number, indices: Int32Array): Int32Array | undefined;
  /**
   * What the backbone sees of loader images (normalized RGB or gray) when its features are
   * evaluated, e.g. the L channel for colorization. Default: the images as they are.
   */
  encoderInput?(images: Tensor): Tensor;
  /** Further networks to probe by name (a GAN's discriminator), each among `modules`; 'backbone' is always probe-able. */
  probes?(): Record<string, ProbeModule>;
  /** The task's own state for checkpoints, and its restoration on resume. */
  state?(): TaskState;
  loadState?(state: TaskState): void;
}

/** Paper hyperparameters a task brings; configs and flags override them. */
export type TaskDefaults = Partial<Omit<TrainSettings, 'optimizer' | 'schedule'>> & {
  /** One optimizer for every phase, or one per phase name. */
  optimizer?: OptimizerConfig | Record<string, OptimizerConfig>;
  schedule?: ScheduleConfig | Record<string, ScheduleConfig>;
};

/** A picture of what the task asks: one panel per sample with a caption. */
export interface TaskPicture {
  /** Images as float tensors N x C x H x W in [0, 1] (display space). */
  panels: Tensor;
  captions: string[];
  /** Panels per row of the grid (e.g. 9 tiles + the solved puzzle; input, prediction, truth). */
  columns: number;
}

/** A line chart over epochs of some of a run's epoch metrics. */
export interface EpochChart {
  name: string;
  title: string;
  yLabel: string;
  series: readonly { metric: string; label: string }[];
}

export interface PretextTask<O extends z.ZodTypeAny = z.ZodTypeAny> {
  readonly name: string;
  readonly description: string;
  readonly paper: string;
  /** Task-specific options with their defaults. */
  readonly options: O;
  readonly defaults: TaskDefaults;
  /** The logged metric that picks the `best` checkpoint (default: the first phase's loss, lower is better). */
  readonly selection?: { metric: string; mode: 'min' | 'max' };
  /** A metric in [0, 1] (e.g. 'discriminator/acc') whose staying at 1 for `steps` steps is warned about as collapse. */
  readonly collapse?: { metric: string; steps: number };
  /** Charts of epoch metrics the trainer redraws after each epoch, as `<run>/charts/<name>.svg`. */
  readonly charts?: readonly EpochChart[];
  /** What the task reads besides single images. */
  readonly data?: {
    /** Consecutive samples that form one item (3 frames of a tuple); the trainer batches batchSize items. */
    samplesPerItem?: number;
    /** Further data sources by name; each is set by `--<name> <data>` or the config field `sources.<name>`. */
    sources?: Record<string, { description: string; default?: string }>;
  };
  /** Channels the backbone takes, given the data's and the task options (1 for colorization's L input); default the data's. */
  readonly inputChannels?: (dataChannels: number, options: z.infer<O>) => number;
  create(backbone: Backbone, options: z.infer<O>, context: { inChannels: number; imageSize: number; store?: SampleStore }): TaskInstance;
  /** Renders what the task asks of the model on a prepared batch (and its answers, when given). */
  picture(batch: PretextBatch, answers: Answer[] | undefined, display: (images: Tensor) => Tensor): TaskPicture;
}

/** A caption's answer mark: ` → predicted ✓/✗`, or nothing without a class answer. */
export function answerMark(answer: Answer | undefined, name: (k: number) => string): string {
  return isClassAnswer(answer) ? ` → ${name(answer.predicted)} ${answer.correct ? '✓' : '✗'}` : '';
}

/** Fraction of rows of logits whose argmax equals the target. */
export function accuracy(logits: Tensor, targets: Tensor): Tensor {
  return logits.argmax(1).eq(targets).float().mean();
}

/** Per-sample answers from classification logits. */
export function classificationAnswers(logits: Tensor, targets: Tensor): ClassAnswer[] {
  const predicted = logits.argmax(1).toArray();
  const target = targets.toArray();
  return target.map((t, i) => ({ target: t, predicted: predicted[i], correct: t === predicted[i] }));
}

/**
 * A task that classifies its prepared inputs with a backbone and a head: one optimizer phase,
 * cross-entropy, accuracy. Tasks bring prepare() and logits().
 */
export abstract class ClassifierTask<Head extends nn.Module<any, any>> implements TaskInstance {
  readonly modules: { backbone: Backbone; head: Head };

  constructor(backbone: Backbone, head: Head) {
    this.modules = { backbone, head };
  }

  phases(): OptimizerPhase[] {
    return [{ name: 'main', parameters: [...this.modules.backbone.parameters(), ...this.modules.head.parameters()] }];
  }

  abstract prepare(batch: Batch, generator: Generator): PretextBatch;

  /** Class logits N x K of prepared inputs. */
  abstract logits(inputs: Tensor): Tensor;

  step(batch: PretextBatch): StepResult {
    const logits = this.logits(batch.inputs);
    return { loss: nn.functional.crossEntropy(logits, batch.targets), metrics: { acc: accuracy(logits, batch.targets) } };
  }

  answers(batch: PretextBatch): Answer[] {
    return classificationAnswers(this.logits(batch.inputs), batch.targets);
  }
}
