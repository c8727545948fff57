// The contract every pretext task implements, one file per task. The trainer only ever calls
// these members, so GAN tasks (several optimizer phases), DeepCluster (epoch hooks), video tasks
// and multi-task heads fit without a branch in the trainer.
import { nn, type Generator, type Tensor } from '@pretext/torch';
import type { z } from 'zod';
import type { Batch } from '../data/loader.js';
import type { SampleStore } from '../data/store.js';
import type { Backbone } from '../models/backbone.js';
import type { TrainConfig } from '../train/config.js';

/** What a task turned a batch into: model inputs, free labels, and anything show() needs. */
export interface PretextBatch {
  inputs: Tensor;
  targets: Tensor;
  /** Extra tensors a task keeps for its loss or for pictures (tile order, patch positions...). */
  extra?: Record<string, Tensor>;
}

export interface StepResult {
  loss: Tensor;
  /** Scalars to log, e.g. pretext accuracy; a step's tensors are read together, in one copy. */
  metrics: Record<string, Tensor | number>;
}

/** One optimizer and the parameters it updates; phases run in order on every batch. */
export interface OptimizerPhase {
  name: string;
  parameters: nn.Parameter[];
}

export interface EpochContext {
  epoch: number;
  store: SampleStore;
  log: (line: string) => void;
}

/** A prediction for show(): per sample the target, the answer, and whether it was right. */
export interface Answer {
  target: number;
  predicted: number;
  correct: boolean;
}

export interface TaskInstance {
  /** Every module to save and load, by name ('backbone', 'head', 'discriminator', ...). */
  readonly modules: Record<string, nn.Module>;
  /** Optimizer phases; most tasks have one, GANs two (generator, discriminator). */
  phases(): OptimizerPhase[];
  /** Turns loader images into pretext inputs and targets, as batched tensor ops. */
  prepare(batch: Batch, generator: Generator): PretextBatch;
  /** Loss and metrics of one optimizer phase on a prepared batch. */
  step(batch: PretextBatch, phase: string): StepResult;
  /** The model's answers on a prepared batch, for show(). */
  answers(batch: PretextBatch): Answer[];
  onEpochStart?(context: EpochContext): Promise<void> | void;
  onEpochEnd?(context: EpochContext): Promise<void> | void;
}

/** Paper hyperparameters a task brings; configs and flags override them. */
export type TaskDefaults = Partial<Omit<TrainConfig, 'task' | 'taskOptions'>>;

/** A picture of what the task asks: one panel per sample with a caption. */
export interface TaskPicture {
  /** Images as float tensors N x C x H x W in [0, 1] (display space). */
  panels: Tensor;
  captions: string[];
  /** Panels per row of the grid (e.g. 9 tiles + the solved puzzle). */
  columns: number;
}

export interface PretextTask<O extends z.ZodTypeAny = z.ZodTypeAny> {
  readonly name: string;
  readonly description: string;
  readonly paper: string;
  /** Task-specific options with their defaults. */
  readonly options: O;
  readonly defaults: TaskDefaults;
  create(backbone: Backbone, options: z.infer<O>, context: { inChannels: number; imageSize: number }): TaskInstance;
  /** Renders what the task asks of the model on a prepared batch. */
  picture(batch: PretextBatch, answers: Answer[] | undefined, display: (images: Tensor) => Tensor): TaskPicture;
}

/** Fraction of rows of logits whose argmax equals the target. */
export function accuracy(logits: Tensor, targets: Tensor): Tensor {
  return logits.argmax(1).eq(targets).float().mean();
}

/** Per-sample answers from classification logits. */
export function classificationAnswers(logits: Tensor, targets: Tensor): Answer[] {
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
