// A network of a trained run to evaluate: its backbone or another module the task offers to probe
// (a GAN's discriminator), with what that module sees of loader images, trained or at a seeded
// random init (the baseline of the same module).
import { manualSeed, type Tensor } from '@pretext/torch';
import type { SampleStore } from '../data/store.js';
import { createBackbone, type Backbone } from '../models/index.js';
import { getTask } from '../tasks/registry.js';
import type { ProbeModule, TaskInstance } from '../tasks/task.js';
import { loadPretrained, type Pretrained } from '../train/pretrained.js';

/** A run with one of its modules picked: `backbone` holds that module (the run's backbone or a probe). */
export interface PretrainedModule extends Pretrained {
  /** 'backbone', or the name of one of the task's probes. */
  module: string;
  /** What the module sees of loader images (the task's encoderInput for the backbone, the probe's input otherwise); undefined: the images. */
  encoderInput?: (images: Tensor) => Tensor;
  /** 'random': the module at a seeded random init, no weights loaded; `instance` is then the task rebuilt at that init. */
  init: 'checkpoint' | 'random';
}

export interface PretrainedModuleOptions {
  /** 'backbone' (default) or one of the task's probes (e.g. 'discriminator'). */
  module?: string;
  /** Builds the same modules after manualSeed(randomSeed) and loads no weights. */
  randomSeed?: number;
  /** For tasks that read their training store (loadPretrained). */
  store?: SampleStore;
}

/** A task instance's encoderInput as a free function (undefined when the backbone takes the loader's images). */
export const encoderInputOf = (instance: TaskInstance): ((images: Tensor) => Tensor) | undefined =>
  instance.encoderInput && ((images: Tensor) => instance.encoderInput!(images));

/** Every module of a task instance the protocols can read: the backbone, with the task's encoderInput, and the task's probes. */
export function probeModules(instance: TaskInstance, backbone: Backbone): Record<string, ProbeModule> {
  return { backbone: { module: backbone, input: encoderInputOf(instance) }, ...instance.probes?.() };
}

/** The run's task instance built again after manualSeed(seed), without weights or task state. */
function randomInstance(pretrained: Pretrained, seed: number, store?: SampleStore): { instance: TaskInstance; backbone: Backbone } {
  const { config, imageSize } = pretrained;
  manualSeed(seed);
  const backbone = createBackbone(config.backbone, pretrained.backbone.inChannels);
  // The data's channels: data.json holds one mean per channel.
  const instance = getTask(config.task).create(backbone, config.taskOptions, {
    inChannels: pretrained.normalization.mean.length,
    imageSize,
    store,
  });
  for (const m of Object.values(instance.modules)) m.eval();
  return { instance, backbone };
}

/**
 * Loads a run (a run folder or checkpoint sidecar) and picks the module to evaluate, by name; with
 * `randomSeed`, that module at random init instead, fed the same input. The backbone at random init
 * is the one randomBackbone(name, inChannels, seed) gives.
 */
export function loadPretrainedModule(path: string, options: PretrainedModuleOptions = {}): PretrainedModule {
  const name = options.module ?? 'backbone';
  const pretrained = loadPretrained(path, { store: options.store });
  const trained = probeModules(pretrained.instance, pretrained.backbone);
  if (!Object.hasOwn(trained, name)) {
    throw new Error(
      `the ${pretrained.config.task} run ${pretrained.checkpoint} has no module '${name}' to probe; probe-able modules: ${Object.keys(trained).join(', ')}`,
    );
  }
  const probe = trained[name];
  // The trained instance's input mapping also feeds the random init: it may read task state (colorization's normalization).
  const encoderInput = probe.input && ((images: Tensor) => probe.input!(images));
  if (options.randomSeed === undefined) return { ...pretrained, backbone: probe.module, module: name, encoderInput, init: 'checkpoint' };
  const random = randomInstance(pretrained, options.randomSeed, options.store);
  const module = probeModules(random.instance, random.backbone)[name].module;
  return { ...pretrained, instance: random.instance, backbone: module, module: name, encoderInput, init: 'random' };
}
