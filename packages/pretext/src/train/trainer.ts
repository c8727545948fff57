// The trainer: one loop for every task. It knows optimizer phases, epochs and checkpoints, and
// nothing about what a task does with a batch.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '@pretext/torch';
import { optim, tidy, type nn, type Tensor } from '@pretext/torch';
import { DataLoader, disposeBatch } from '../data/loader.js';
import { resolveDataset } from '../data/datasets.js';
import { Progress } from '../data/progress.js';
import type { SampleStore } from '../data/store.js';
import { backbones, createBackbone } from '../models/index.js';
import { getTask } from '../tasks/registry.js';
import type { TaskInstance } from '../tasks/task.js';
import { listCheckpoints, loadCheckpoint, pruneCheckpoints, saveCheckpoint, type CheckpointState } from './checkpoint.js';
import type { RunData } from './pretrained.js';
import { ConfigError, mergeConfig, trainConfigSchema, validate, type TrainConfig, type TrainConfigInput } from './config.js';

export interface TrainOptions {
  /** Continue from the latest checkpoint in the run folder. */
  resume?: boolean;
  log?: (line: string) => void;
  /** Draw a progress bar on stderr (default true). */
  progress?: boolean;
  /** A store to train on instead of resolving `config.data` (tests, embedding pipelines). */
  store?: SampleStore;
}

export interface EpochRecord {
  epoch: number;
  steps: number;
  metrics: Record<string, number>;
  imagesPerSecond: number;
  seconds: number;
  lr: number;
}

export interface TrainResult {
  config: TrainConfig;
  runDir: string;
  steps: number;
  history: EpochRecord[];
  /** True when a signal stopped the run early (after saving a checkpoint). */
  interrupted: boolean;
  cpuSeconds: number;
  wallSeconds: number;
}

/** Applies task defaults under the given config and validates the result. */
export function resolveConfig(input: TrainConfigInput | Record<string, unknown>): TrainConfig {
  const taskName = (input as { task?: unknown }).task;
  if (typeof taskName !== 'string') return validate(trainConfigSchema, input);
  const task = getTask(taskName);
  const merged = mergeConfig(task.defaults as Record<string, unknown>, input as Record<string, unknown>);
  const config = validate(trainConfigSchema, merged);
  config.taskOptions = validate(task.options, config.taskOptions, `taskOptions of '${task.name}'`) as Record<string, unknown>;
  if (!(config.backbone in backbones)) {
    throw new ConfigError(
      `config field 'backbone' = "${config.backbone}": unknown backbone; valid backbones: ${Object.keys(backbones).join(', ')}`,
    );
  }
  return config;
}

function makeOptimizer(config: TrainConfig['optimizer'], params: nn.Parameter[]): optim.Optimizer<{ lr: number }> {
  switch (config.name) {
    case 'sgd':
      return new optim.SGD(params, config);
    case 'adam':
      return new optim.Adam(params, config);
    case 'adamw':
      return new optim.AdamW(params, config);
  }
}

function makeScheduler(
  config: TrainConfig['schedule'],
  opt: optim.Optimizer<{ lr: number }>,
  stepsPerEpoch: number,
  totalSteps: number,
): optim.LRScheduler {
  switch (config.name) {
    case 'constant':
      return new optim.MultiStepLR(opt, []); // no milestones: the rate stays
    case 'multistep':
      return new optim.MultiStepLR(
        opt,
        config.milestones.map((m) => m * stepsPerEpoch),
        config.gamma,
      );
    case 'cosine':
      return new optim.CosineWithWarmup(opt, {
        warmupSteps: Math.round(config.warmupEpochs * stepsPerEpoch),
        totalSteps,
        minLrRatio: config.minLrRatio,
      });
  }
}

/** A seeded subset of sample indices, sorted. */
export function subsetIndices(n: number, limit: number, seed: number): Int32Array {
  if (limit >= n) return Int32Array.from({ length: n }, (_, i) => i);
  const perm = torch.noGrad(() => tidy(() => torch.randperm(n, new torch.Generator(seed)).narrow(0, 0, limit).sort(0)[0].toArray()));
  return Int32Array.from(perm);
}

/** Running means of step metrics over an epoch. */
class Meters {
  private sums = new Map<string, number>();
  private counts = new Map<string, number>();

  add(values: Record<string, number>): void {
    for (const [k, v] of Object.entries(values)) {
      this.sums.set(k, (this.sums.get(k) ?? 0) + v);
      this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
    }
  }

  means(): Record<string, number> {
    return Object.fromEntries([...this.sums].map(([k, s]) => [k, s / this.counts.get(k)!]));
  }
}

const formatMetrics = (m: Record<string, number>) =>
  Object.entries(m)
    .map(([k, v]) => `${k} ${v.toFixed(4)}`)
    .join('  ');

/** Reads a step's loss and metric tensors with one copy from the device, not one per value. */
function readScalars(scalars: Map<string, Tensor | number>): Record<string, number> {
  const tensors = [...scalars.values()].filter((v): v is Tensor => typeof v !== 'number');
  const read = tensors.length ? torch.stack(tensors.map((t) => t.detach().reshape([]).toDtype('float64'))).toArray() : [];
  let next = 0;
  return Object.fromEntries([...scalars].map(([k, v]) => [k, typeof v === 'number' ? v : read[next++]]));
}

/** Puts every module of a task instance in training mode. */
function trainMode(instance: TaskInstance): void {
  for (const m of Object.values(instance.modules)) m.train();
}

export async function train(input: TrainConfigInput | Record<string, unknown>, options: TrainOptions = {}): Promise<TrainResult> {
  const config = resolveConfig(input);
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const runDir = config.out;
  const ckptDir = join(runDir, 'checkpoints');
  mkdirSync(runDir, { recursive: true });
  const configPath = join(runDir, 'config.json');
  const resumeFrom = options.resume ? listCheckpoints(ckptDir).at(-1) : undefined;
  if (options.resume && existsSync(configPath)) {
    const saved = JSON.parse(readFileSync(configPath, 'utf8'));
    const differs = Object.keys(config).filter(
      (k) => k !== 'epochs' && JSON.stringify(saved[k]) !== JSON.stringify((config as Record<string, unknown>)[k]),
    );
    if (differs.length) throw new Error(`--resume: the config differs from the run's saved config in ${differs.join(', ')}`);
  }
  writeFileSync(configPath, JSON.stringify(config, null, 2));

  if (config.threads) torch.setNumThreads(config.threads);
  torch.manualSeed(config.seed);
  const task = getTask(config.task);
  const store = options.store ?? (await resolveDataset(config.data, { split: 'train', size: config.imageSize, log }));
  const indices = config.limit ? subsetIndices(store.n, config.limit, config.seed) : undefined;
  const loader = new DataLoader(store, {
    batchSize: config.batchSize,
    seed: config.seed,
    augment: config.augment,
    indices,
    outputSize: config.imageSize,
  });
  const imageSize = config.imageSize ?? store.height;
  const runData: RunData = { channels: store.channels, imageSize, ...loader.stats(), samples: loader.numSamples };
  writeFileSync(join(runDir, 'data.json'), JSON.stringify(runData, null, 2));
  const backbone = createBackbone(config.backbone, store.channels);
  const instance = task.create(backbone, config.taskOptions, { inChannels: store.channels, imageSize });
  const phases = instance.phases();
  const optimizers = Object.fromEntries(phases.map((p) => [p.name, makeOptimizer(config.optimizer, p.parameters)]));
  const stepsPerEpoch = Math.min(loader.batchesPerEpoch, config.stepsPerEpoch ?? Infinity);
  if (stepsPerEpoch < 1) throw new Error(`the dataset has ${loader.numSamples} samples, fewer than one batch of ${config.batchSize}`);
  const totalSteps = stepsPerEpoch * config.epochs;
  const schedulers = Object.fromEntries(
    phases.map((p) => [p.name, makeScheduler(config.schedule, optimizers[p.name], stepsPerEpoch, totalSteps)]),
  );
  const generator = new torch.Generator(config.seed + 1);

  const state = (step: number, epoch: number, batch: number, info: Record<string, unknown>): CheckpointState => ({
    step,
    epoch,
    batch,
    modules: instance.modules,
    optimizers,
    schedulers,
    rng: { task: generator.getState(), global: torch.defaultGenerator().getState() },
    info: { ...info, threads: torch.getNumThreads() },
  });

  let step = 0;
  let startEpoch = 0;
  let startBatch = 0;
  let best = Infinity;
  if (resumeFrom) {
    const restored = loadCheckpoint(resumeFrom.sidecar, { modules: instance.modules, optimizers, schedulers });
    generator.setState(restored.rng.task);
    torch.defaultGenerator().setState(restored.rng.global);
    ({ step, epoch: startEpoch, batch: startBatch } = restored);
    best = (restored.info.best as number | undefined) ?? Infinity;
    if (config.deterministic && restored.info.threads !== torch.getNumThreads()) {
      throw new Error(
        `--deterministic resume needs the same thread count: the checkpoint used ${restored.info.threads}, this run ${torch.getNumThreads()}`,
      );
    }
    log(`resuming from ${resumeFrom.name}: epoch ${startEpoch + 1}, batch ${startBatch}, step ${step}`);
  } else if (options.resume) {
    log(`--resume: no checkpoint in ${ckptDir}, starting fresh`);
  }

  const metricsPath = join(runDir, 'metrics.jsonl');
  const record = (entry: Record<string, unknown>) =>
    appendFileSync(metricsPath, JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n');
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  const history: EpochRecord[] = [];
  const prefix = (phase: string, key: string) => (phases.length > 1 ? `${phase}/${key}` : key);
  log(
    `pretraining ${task.name} on ${config.data} (${loader.numSamples} images, ${stepsPerEpoch} steps/epoch) with ${config.backbone}, ` +
      `${backbone.numParameters().toLocaleString('en-US')} backbone parameters, ${torch.getNumThreads()} threads`,
  );

  try {
    for (let epoch = startEpoch; epoch < config.epochs && !interrupted; epoch++) {
      await instance.onEpochStart?.({ epoch, store, log });
      trainMode(instance);
      const meters = new Meters();
      const progress = options.progress === false ? undefined : new Progress(`epoch ${epoch + 1}/${config.epochs}`, stepsPerEpoch);
      progress?.update(startBatch);
      const epochStart = performance.now();
      let images = 0;
      let batchIndex = startBatch;
      for await (const batch of loader.epoch(epoch, startBatch)) {
        if (batch.index >= stepsPerEpoch) {
          disposeBatch(batch);
          break;
        }
        const values = tidy(() => {
          const prepared = instance.prepare(batch, generator);
          const scalars = new Map<string, Tensor | number>();
          for (const phase of phases) {
            const opt = optimizers[phase.name];
            opt.zeroGrad();
            const { loss, metrics } = instance.step(prepared, phase.name);
            loss.backward();
            if (config.gradClip) torch.optim.clipGradNorm_(phase.parameters, config.gradClip);
            opt.step();
            schedulers[phase.name].step();
            scalars.set(prefix(phase.name, 'loss'), loss);
            for (const [k, v] of Object.entries(metrics)) scalars.set(prefix(phase.name, k), v);
          }
          return readScalars(scalars);
        });
        images += batch.images.shape[0];
        disposeBatch(batch);
        step++;
        batchIndex = batch.index + 1;
        meters.add(values);
        const rate = images / ((performance.now() - epochStart) / 1000);
        progress?.setStatus(`${formatMetrics(values)}  ${rate.toFixed(0)} img/s`);
        progress?.update(batchIndex);
        if (step % config.logEverySteps === 0)
          record({ type: 'step', epoch: epoch + 1, step, lr: optimizers[phases[0].name].lr, imagesPerSecond: rate, ...values });
        const endOfEpoch = batchIndex >= stepsPerEpoch;
        if (interrupted || (step % config.checkpointEverySteps === 0 && !endOfEpoch)) {
          saveCheckpoint(ckptDir, state(step, epoch, batchIndex, { best }));
          pruneCheckpoints(ckptDir, config.keepLast);
        }
        if (interrupted) break;
      }
      progress?.finish();
      startBatch = 0;
      if (interrupted) {
        log(`interrupted: saved a checkpoint at step ${step}; continue with --resume`);
        break;
      }
      const seconds = (performance.now() - epochStart) / 1000;
      const metrics = meters.means();
      const entry: EpochRecord = {
        epoch: epoch + 1,
        steps: step,
        metrics,
        imagesPerSecond: images / seconds,
        seconds,
        lr: optimizers[phases[0].name].lr,
      };
      history.push(entry);
      record({ type: 'epoch', ...entry });
      log(
        `epoch ${epoch + 1}/${config.epochs}  ${formatMetrics(metrics)}  ${entry.imagesPerSecond.toFixed(0)} img/s  ${seconds.toFixed(1)} s`,
      );
      await instance.onEpochEnd?.({ epoch, store, log });
      const score = metrics[prefix(phases[0].name, 'loss')];
      const isBest = score < best;
      if (isBest) best = score;
      const saved = state(step, epoch + 1, 0, { best, metrics });
      saveCheckpoint(ckptDir, saved);
      if (isBest) saveCheckpoint(ckptDir, saved, 'best');
      pruneCheckpoints(ckptDir, config.keepLast);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await loader.close();
  }
  const cpu = process.cpuUsage(cpuStart);
  return {
    config,
    runDir,
    steps: step,
    history,
    interrupted,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    wallSeconds: (performance.now() - wallStart) / 1000,
  };
}
