// Multi-task pretraining (Doersch & Zisserman, Multi-task Self-Supervised Visual Learning, ICCV
// 2017): one backbone, several pretext tasks with their own heads, their losses weighted and summed
// under one optimizer. Each batch is prepared by every task.
import type { Generator, nn, Tensor } from '@pretext/torch';
import { z } from 'zod';
import type { Batch } from '../data/loader.js';
import type { Backbone } from '../models/backbone.js';
import { getTask } from './catalog.js';
import type { Answer, EpochContext, OptimizerPhase, PretextBatch, PretextTask, StepResult, TaskInstance, TaskState } from './task.js';

const options = z
  .object({
    /** The tasks and their loss weights, e.g. [{ name: rotation }, { name: jigsaw, weight: 0.5 }]. */
    tasks: z
      .array(
        z
          .object({
            name: z.string(),
            weight: z.number().positive().default(1),
            options: z.record(z.string(), z.unknown()).default({}),
          })
          .strict(),
      )
      .min(2),
  })
  .strict();
type Options = z.infer<typeof options>;

/** A task's prepared batch, flattened into the combined batch's extras under a prefix, and back. */
function flatten(prefix: string, batch: PretextBatch, into: Record<string, Tensor>): void {
  into[`${prefix}inputs`] = batch.inputs;
  into[`${prefix}targets`] = batch.targets;
  for (const [k, v] of Object.entries(batch.extra ?? {})) into[`${prefix}extra.${k}`] = v;
}

function unflatten(prefix: string, extra: Record<string, Tensor>): PretextBatch {
  const own = Object.entries(extra).filter(([k]) => k.startsWith(`${prefix}extra.`));
  return {
    inputs: extra[`${prefix}inputs`],
    targets: extra[`${prefix}targets`],
    extra: Object.fromEntries(own.map(([k, v]) => [k.slice(prefix.length + 6), v])),
  };
}

const prefixOf = (i: number) => `${i}.`;

class MultiTaskModel implements TaskInstance {
  readonly modules: Record<string, nn.Module>;
  private readonly members: { name: string; weight: number; instance: TaskInstance }[];

  constructor(backbone: Backbone, o: Options, context: Parameters<PretextTask['create']>[2]) {
    this.members = o.tasks.map((entry, i) => {
      const task = getTask(entry.name);
      if (task.data || task.name === multitaskTask.name) {
        throw new Error(`multitask: '${task.name}' reads other data than single images and cannot share a batch (taskOptions.tasks[${i}])`);
      }
      const parsed = task.options.safeParse(entry.options);
      if (!parsed.success) throw new Error(`multitask: taskOptions.tasks[${i}].options: ${parsed.error.issues[0].message}`);
      const instance = task.create(backbone, parsed.data, context);
      if (instance.phases().length !== 1 || instance.epochOrder) {
        throw new Error(`multitask: '${task.name}' needs its own optimizer phases or sampler (taskOptions.tasks[${i}])`);
      }
      return { name: task.name, weight: entry.weight, instance };
    });
    const modules: Record<string, nn.Module> = { backbone };
    this.members.forEach(({ name, instance }) => {
      for (const [key, module] of Object.entries(instance.modules)) if (key !== 'backbone') modules[`${name}.${key}`] = module;
    });
    this.modules = modules;
  }

  phases(): OptimizerPhase[] {
    const parameters = new Set(this.members.flatMap(({ instance }) => instance.phases()[0].parameters));
    return [{ name: 'main', parameters: [...parameters] }];
  }

  prepare(batch: Batch, generator: Generator): PretextBatch {
    const extra: Record<string, Tensor> = {};
    const prepared = this.members.map(({ instance }, i) => {
      const p = instance.prepare(batch, generator);
      flatten(prefixOf(i), p, extra);
      return p;
    });
    taskNames.set(prepared[0].inputs, this.members[0].name);
    return { inputs: prepared[0].inputs, targets: prepared[0].targets, extra };
  }

  step(batch: PretextBatch): StepResult {
    let loss: Tensor | undefined;
    const metrics: StepResult['metrics'] = {};
    this.members.forEach(({ name, weight, instance }, i) => {
      const own = instance.step(unflatten(prefixOf(i), batch.extra!), instance.phases()[0].name);
      loss = loss ? loss.add(own.loss, weight) : own.loss.mul(weight);
      metrics[`${name}.loss`] = own.loss;
      for (const [k, v] of Object.entries(own.metrics)) metrics[`${name}.${k}`] = v;
    });
    return { loss: loss!, metrics };
  }

  answers(batch: PretextBatch): Answer[] {
    return this.members[0].instance.answers(unflatten(prefixOf(0), batch.extra!));
  }

  async onEpochStart(context: EpochContext): Promise<void> {
    for (const { instance } of this.members) await instance.onEpochStart?.(context);
  }

  async onEpochEnd(context: EpochContext): Promise<void> {
    for (const { instance } of this.members) await instance.onEpochEnd?.(context);
  }

  state(): TaskState {
    const tensors: Record<string, Tensor> = {};
    const json: Record<string, unknown> = {};
    for (const { name, instance } of this.members) {
      const own = instance.state?.();
      for (const [k, v] of Object.entries(own?.tensors ?? {})) tensors[`${name}.${k}`] = v;
      if (own?.json !== undefined) json[name] = own.json;
    }
    return { tensors, json };
  }

  loadState(state: TaskState): void {
    for (const { name, instance } of this.members) {
      const own = Object.entries(state.tensors ?? {}).filter(([k]) => k.startsWith(`${name}.`));
      instance.loadState?.({
        tensors: Object.fromEntries(own.map(([k, v]) => [k.slice(name.length + 1), v])),
        json: (state.json as Record<string, unknown> | undefined)?.[name],
      });
    }
  }
}

export const multitaskTask: PretextTask<typeof options> = {
  name: 'multitask',
  description: 'Multi-task: several pretext tasks on one backbone, their weighted losses summed (e.g. rotation + jigsaw)',
  paper: 'Doersch & Zisserman, Multi-task Self-Supervised Visual Learning, ICCV 2017',
  options,
  defaults: {
    backbone: 'nin4',
    epochs: 30,
    batchSize: 128,
    optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
    schedule: { name: 'cosine' },
    taskOptions: { tasks: [{ name: 'rotation' }, { name: 'jigsaw' }] },
  },
  create: (backbone, o, context) => new MultiTaskModel(backbone, o, context),
  picture(batch, answers, display) {
    // The first task's picture: what it asks, with its answers.
    return getTask(firstTaskName(batch)).picture(unflatten(prefixOf(0), batch.extra!), answers, display);
  },
};

/** The first task's name travels with the batch so that picture(), which has no instance, can find it. */
function firstTaskName(batch: PretextBatch): string {
  const name = taskNames.get(batch.extra!['0.inputs']);
  if (!name) throw new Error('multitask: this batch was not prepared by a multitask instance');
  return name;
}
const taskNames = new WeakMap<Tensor, string>();
