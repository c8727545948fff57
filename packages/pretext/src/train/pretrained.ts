// Loading a trained run back: its config, task modules and backbone, from a run folder or a checkpoint.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBackbone, type Backbone } from '../models/index.js';
import { getTask } from '../tasks/registry.js';
import type { TaskInstance } from '../tasks/task.js';
import { findCheckpoint } from '../util/run-files.js';
import { loadModuleWeights } from './checkpoint.js';
import type { TrainConfig } from '../config/schema.js';
import type { SampleStore } from '../data/store.js';

/** What the trainer records about the data in the run folder (data.json). */
export interface RunData {
  channels: number;
  imageSize: number;
  mean: number[];
  std: number[];
  samples: number;
}

export interface Pretrained {
  config: TrainConfig;
  instance: TaskInstance;
  backbone: Backbone;
  checkpoint: string;
  /** Per-channel normalization the run trained with (run folder data.json). */
  normalization: { mean: number[]; std: number[] };
  /** The side the run trained at (data.json; config.imageSize may be unset, meaning the data's own). */
  imageSize: number;
  /** Training samples of an epoch (data.json). */
  samples: number;
}

export { findCheckpoint } from '../util/run-files.js';

/** Rebuilds the task's modules as the run configured them and loads their weights; tasks that read their training store (synthetic scenes' geometry) get `store`. */
export function loadPretrained(path: string, options: { store?: SampleStore } = {}): Pretrained {
  const { sidecar, runDir } = findCheckpoint(path);
  const configPath = join(runDir, 'config.json');
  if (!existsSync(configPath)) throw new Error(`--checkpoint: ${configPath} is missing, so the model cannot be rebuilt`);
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as TrainConfig;
  const data = JSON.parse(readFileSync(join(runDir, 'data.json'), 'utf8')) as RunData;
  const task = getTask(config.task);
  const backbone = createBackbone(config.backbone, task.inputChannels?.(data.channels, config.taskOptions) ?? data.channels);
  const instance = task.create(backbone, config.taskOptions, {
    inChannels: data.channels,
    imageSize: data.imageSize,
    store: options.store,
  });
  const restored = loadModuleWeights(sidecar, instance.modules);
  if (restored.taskState) instance.loadState?.(restored.taskState);
  for (const m of Object.values(instance.modules)) m.eval();
  return {
    config,
    instance,
    backbone,
    checkpoint: sidecar,
    normalization: { mean: data.mean, std: data.std },
    imageSize: data.imageSize,
    samples: data.samples,
  };
}
