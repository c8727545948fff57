// The trainer: one loop for every task. It knows optimizer phases, epochs and checkpoints, and
// nothing about what a task does with a batch.
import { writeEpochCharts } from '../viz/charts.js';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as torch from '@pretext/torch';
import { makeDirectory, optim, tidy, writeFileAtomic, type nn, type Tensor } from '@pretext/torch';
import { DataLoader, disposeBatch, type Batch } from '../data/loader.js';
import { resolveDataset } from '../data/datasets.js';
import { Progress } from '../data/progress.js';
import type { SampleStore } from '../data/store.js';
import { backbones, createBackbone } from '../models/index.js';
import { getTask } from '../tasks/registry.js';
import type { EpochContext, OptimizerPhase, PretextTask, TaskInstance } from '../tasks/task.js';
import { BudgetPlan, formatBudget } from '../util/budget.js';
import { resolvePrecision, withPrecision } from '../util/precision.js';
import { subsetIndices } from '../util/random.js';
import { checkStepMemory, dryStep, estimateStepMemory, tensorBytes, type DryStepInput, type StepMemoryEstimate } from './memory.js';
import { joinRanks } from './parallel.js';
import { loadLatestCheckpoint, pruneCheckpoints, removeOrphanedTemporaries, saveCheckpoint, type CheckpointState } from './checkpoint.js';
import type { RunData } from './pretrained.js';
import type { z } from 'zod';
import {
  ConfigError,
  mergeConfig,
  trainConfigSchema,
  validate,
  type optimizerSchema,
  type scheduleSchema,
  type TrainConfig,
  type TrainConfigInput,
} from '../config/schema.js';

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
  /** Why training ended: all epochs done, the budget spent, or a signal. */
  stopped: 'epochs' | 'budget' | 'signal';
  /** Images seen over the whole run (all sessions of a resumed run). */
  imagesSeen: number;
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
  config.precision = resolvePrecision(config.precision);
  if (!(config.backbone in backbones)) {
    throw new ConfigError(
      `config field 'backbone' = "${config.backbone}": unknown backbone; valid backbones: ${Object.keys(backbones).join(', ')}`,
    );
  }
  return config;
}

type OptimizerSettings = z.infer<typeof optimizerSchema>;
type ScheduleSettings = z.infer<typeof scheduleSchema>;

/**
 * The setting of one phase from a config field that holds one setting for all phases or one per
 * phase name; the error names the field and the task's phases.
 */
function settingOf<T extends { name: string }>(value: T | Record<string, T>, field: string, phases: OptimizerPhase[], phase: string): T {
  if (typeof value.name === 'string') return value as T;
  const perPhase = value as Record<string, T>;
  const names = phases.map((p) => p.name);
  const unknown = Object.keys(perPhase).filter((k) => !names.includes(k));
  if (unknown.length)
    throw new ConfigError(`config field '${field}.${unknown[0]}': no such phase; the task's phases are ${names.join(', ')}`);
  const setting = perPhase[phase];
  if (!setting)
    throw new ConfigError(`config field '${field}.${phase}' is missing; give one per phase (${names.join(', ')}) or one for all`);
  return setting;
}

function makeOptimizer(config: OptimizerSettings, params: nn.Parameter[]): optim.Optimizer<{ lr: number }> {
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
  config: ScheduleSettings,
  opt: optim.Optimizer<{ lr: number }>,
  stepsPerEpoch: number,
  totalSteps: number,
): optim.LRScheduler {
  switch (config.name) {
    case 'constant':
      return new optim.MultiStepLR(opt, []); // no milestones: the rate stays
    case 'multistep':
      return new optim.MultiStepLR(opt, [...new Set(config.milestones.map((m) => Math.round(m * stepsPerEpoch)))], config.gamma);
    case 'cosine':
      return new optim.CosineWithWarmup(opt, {
        warmupSteps: Math.round(config.warmupEpochs * stepsPerEpoch),
        totalSteps,
        minLrRatio: config.minLrRatio,
      });
  }
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

/** Stops a run: a loss that is not finite or explodes, with the phase, the step and the value. */
export class DivergenceError extends Error {}

/** Watches phase losses for divergence and a task's collapse metric; one instance per run. */
class Watchdog {
  private readonly means = new Map<string, number>();
  private collapsedFor = 0;

  constructor(
    private readonly divergence: TrainConfig['divergence'],
    private readonly collapse: PretextTask['collapse'],
    private readonly log: (line: string) => void,
  ) {}

  check(step: number, values: Record<string, number>, lossKeys: Map<string, string>): void {
    for (const [phase, key] of lossKeys) {
      const value = values[key];
      if (value === undefined) continue;
      const mean = this.means.get(key);
      const where = `phase '${phase}' at step ${step}`;
      if (!Number.isFinite(value)) throw new DivergenceError(`training diverged: ${where} has loss ${value}`);
      if (mean !== undefined && step > this.divergence.afterSteps && Math.abs(value) > this.divergence.factor * Math.abs(mean)) {
        throw new DivergenceError(
          `training diverged: ${where} has loss ${value.toPrecision(4)}, over ${this.divergence.factor}x its running mean ${mean.toPrecision(4)}`,
        );
      }
      this.means.set(key, mean === undefined ? value : 0.98 * mean + 0.02 * value);
    }
    if (!this.collapse) return;
    const watched = values[this.collapse.metric];
    if (watched === undefined) return;
    this.collapsedFor = watched >= 0.999 ? this.collapsedFor + 1 : 0;
    if (this.collapsedFor === this.collapse.steps) {
      this.log(
        `warning: ${this.collapse.metric} has been 1 for ${this.collapse.steps} steps (step ${step}): the discriminator wins outright`,
      );
    }
  }
}

/** Batches of a further data source, as a pure function of the global step (so a resumed run sees the same ones). */
class SourceStream {
  private iterator: AsyncIterableIterator<Batch> | undefined;

  constructor(private readonly loader: DataLoader) {
    if (loader.batchesPerEpoch < 1) throw new Error(`a data source has ${loader.numSamples} samples, fewer than one batch`);
  }

  async at(step: number): Promise<Batch> {
    const perEpoch = this.loader.batchesPerEpoch;
    if (!this.iterator || step % perEpoch === 0) {
      await this.iterator?.return?.();
      this.iterator = this.loader.epoch(Math.floor(step / perEpoch), step % perEpoch);
    }
    const { value, done } = await this.iterator.next();
    if (done) throw new Error('a data source ended early');
    return value;
  }

  async close(): Promise<void> {
    await this.iterator?.return?.();
    await this.loader.close();
  }
}

async function sourceBatches(sources: Map<string, SourceStream>, step: number): Promise<Record<string, Batch>> {
  const out: Record<string, Batch> = {};
  for (const [name, source] of sources) out[name] = await source.at(step);
  return out;
}

/** This rank's items of a task's epoch order: items r, r + W, r + 2W, ... (as the loader shards its own order). */
function shardItems(order: Int32Array | undefined, samplesPerItem: number, parallel: { rank: number; worldSize: number }) {
  if (!order || parallel.worldSize === 1) return order;
  const items = Math.floor(order.length / samplesPerItem / parallel.worldSize);
  const out = new Int32Array(items * samplesPerItem);
  for (let k = 0; k < items; k++) {
    const from = (parallel.rank + k * parallel.worldSize) * samplesPerItem;
    out.set(order.subarray(from, from + samplesPerItem), k * samplesPerItem);
  }
  return out;
}

/** Refuses a run whose step would not fit in memory (estimated from dry steps), before it starts. */
function checkMemory(input: DryStepInput & { batchSize: number; parameters: nn.Parameter[] }, log: (line: string) => void): void {
  let estimate: StepMemoryEstimate;
  try {
    // Optimizer state: up to two slots per parameter (Adam's moments).
    estimate = estimateStepMemory(dryStep(input), input.batchSize, { extraBytes: 2 * tensorBytes(input.parameters) });
  } catch (e) {
    log(`memory: no estimate before the first step (${(e as Error).message})`);
    return;
  }
  log(`memory: a step at batch ${input.batchSize} needs about ${(estimate.stepBytes / 2 ** 30).toFixed(2)} GiB`);
  checkStepMemory(estimate, { imageSize: input.imageSize });
}

/** Whether a phase runs on this step. */
const runsNow = (phase: OptimizerPhase, epoch: number, step: number) =>
  step % (phase.every ?? 1) === 0 && (phase.active?.({ epoch, step }) ?? true);

/** Runs `fn` with only `own` requiring grad among `all`, so a phase's loss leaves other phases' parameters alone. */
function withOnlyGrads<T>(own: Set<nn.Parameter>, all: nn.Parameter[], fn: () => T): T {
  const frozen = all.filter((p) => !own.has(p) && p.requiresGrad);
  for (const p of frozen) p.requiresGrad_(false);
  try {
    return fn();
  } finally {
    for (const p of frozen) p.requiresGrad_(true);
  }
}

const writeJson = (path: string, value: unknown) => writeFileAtomic(path, Buffer.from(JSON.stringify(value, null, 2)));

/** Lets pending signals and I/O run between steps (a Ctrl-C lands within one step). */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function train(input: TrainConfigInput | Record<string, unknown>, options: TrainOptions = {}): Promise<TrainResult> {
  const config = resolveConfig(input);
  const parallel = await joinRanks(config, options.log ?? ((line: string) => process.stderr.write(line + '\n')));
  // Rank 0 speaks and writes for every rank.
  const log = parallel.isMain ? (options.log ?? ((line: string) => process.stderr.write(line + '\n'))) : () => {};
  const runDir = config.out;
  const ckptDir = join(runDir, 'checkpoints');
  makeDirectory(runDir);
  const orphans = parallel.isMain ? removeOrphanedTemporaries(ckptDir) : [];
  if (orphans.length) log(`removed ${orphans.length} temporary file(s) left by an interrupted checkpoint write: ${orphans.join(', ')}`);
  const configPath = join(runDir, 'config.json');
  if (options.resume && existsSync(configPath)) {
    const saved = JSON.parse(readFileSync(configPath, 'utf8'));
    const same = (k: string, a: unknown, b: unknown) =>
      k === 'out' ? resolve(String(a)) === resolve(String(b)) : JSON.stringify(a) === JSON.stringify(b);
    const differs = Object.keys(config).filter((k) => k !== 'epochs' && !same(k, saved[k], (config as Record<string, unknown>)[k]));
    if (differs.length) throw new Error(`--resume: the config differs from the run's saved config in ${differs.join(', ')}`);
  }
  // Atomic: other ranks of a resumed run read it at the same time.
  if (parallel.isMain) writeJson(configPath, config);

  if (config.threads) torch.setNumThreads(config.threads);
  torch.manualSeed(config.seed);
  const task = getTask(config.task);
  const resolveSpec = (spec: string) => resolveDataset(spec, { split: 'train', size: config.imageSize, log });
  const store = options.store ?? (await resolveSpec(config.data));
  const trainIndices = config.limit ? subsetIndices(store.n, config.limit, config.seed) : Int32Array.from({ length: store.n }, (_, i) => i);
  const samplesPerItem = task.data?.samplesPerItem ?? 1;
  const loader = new DataLoader(store, {
    batchSize: config.batchSize * samplesPerItem,
    seed: config.seed,
    augment: config.augment,
    indices: config.limit ? trainIndices : undefined,
    outputSize: config.imageSize,
    rank: parallel.rank,
    worldSize: parallel.worldSize,
  });
  const imageSize = config.imageSize ?? store.height;
  const runData: RunData = { channels: store.channels, imageSize, ...loader.stats(), samples: loader.numSamples };
  if (parallel.isMain) writeJson(join(runDir, 'data.json'), runData);
  const backbone = createBackbone(config.backbone, task.inputChannels?.(store.channels, config.taskOptions) ?? store.channels);
  const instance = task.create(backbone, config.taskOptions, { inChannels: store.channels, imageSize, store });
  const phases = instance.phases();
  const allParameters = [...new Set(phases.flatMap((p) => p.parameters))];
  const optimizers = Object.fromEntries(
    phases.map((p) => [p.name, makeOptimizer(settingOf(config.optimizer, 'optimizer', phases, p.name), p.parameters)]),
  );
  const nominalSteps = instance.epochOrder
    ? Math.floor(trainIndices.length / config.batchSize / parallel.worldSize)
    : loader.batchesPerEpoch;
  const stepsPerEpoch = Math.min(nominalSteps, config.stepsPerEpoch ?? Infinity);
  if (stepsPerEpoch < 1) {
    const limited = config.limit ? ` (--limit ${config.limit} of the store's ${store.n})` : '';
    throw new Error(
      `the run has ${trainIndices.length} samples${limited}, fewer than one batch of ${config.batchSize}: lower --batch-size or raise --limit`,
    );
  }
  const totalSteps = stepsPerEpoch * config.epochs;
  const schedulers = Object.fromEntries(
    phases.map((p) => [
      p.name,
      makeScheduler(settingOf(config.schedule, 'schedule', phases, p.name), optimizers[p.name], stepsPerEpoch, totalSteps),
    ]),
  );
  /** Lays each phase's schedule over `steps` steps (a budget's), continuing from step `done`. */
  const layOutSchedules = (steps: number, done: number) => {
    for (const p of phases) {
      optimizers[p.name].setLr(schedulers[p.name].baseLrs);
      const settings = settingOf(config.schedule, 'schedule', phases, p.name);
      schedulers[p.name] = makeScheduler(settings, optimizers[p.name], steps / config.epochs, steps);
      schedulers[p.name].loadStateDict({ lastStep: done });
    }
  };
  const sources = new Map<string, SourceStream>();
  for (const [k, [name, source]] of Object.entries(task.data?.sources ?? {}).entries()) {
    const spec = config.sources[name] ?? source.default;
    if (!spec)
      throw new ConfigError(
        `config field 'sources.${name}' is missing: task '${task.name}' needs ${source.description} (--${name} <data>)`,
      );
    const sourceStore = await resolveSpec(spec);
    const sourceLoader = new DataLoader(sourceStore, {
      batchSize: config.batchSize,
      seed: config.seed + 1000 * (k + 1),
      augment: config.augment,
      // The encoder sees every source as it sees the main data (and as evaluation will feed it).
      normalize: loader.stats(),
      outputSize: imageSize,
      channels: sourceStore.channels < store.channels ? store.channels : undefined,
    });
    sources.set(name, new SourceStream(sourceLoader));
  }
  const generator = new torch.Generator(config.seed + 1);
  if (config.memoryCheck) {
    const dry = { instance, channels: store.channels, imageSize, samplesPerItem, sources: [...sources.keys()] };
    checkMemory({ ...dry, batchSize: config.batchSize, parameters: allParameters }, log);
  }

  const state = (step: number, epoch: number, batch: number, info: Record<string, unknown>): CheckpointState => ({
    step,
    epoch,
    batch,
    modules: instance.modules,
    optimizers,
    schedulers,
    rng: { task: generator.getState(), global: torch.defaultGenerator().getState() },
    info: {
      ...info,
      ...budgetInfo(),
      cpuSeconds: runCpuSeconds(),
      imagesSeen,
      threads: torch.getNumThreads(),
      worldSize: parallel.worldSize,
    },
    taskState: instance.state?.(),
  });

  const selection = task.selection ?? { metric: phases.length > 1 ? `${phases[0].name}/loss` : 'loss', mode: 'min' as const };
  const better = (a: number, b: number) => (selection.mode === 'min' ? a < b : a > b);
  /** Whether these metrics beat `best` under the task's selection metric (and makes them the best). */
  const improves = (metrics: Record<string, number>): boolean => {
    const score = metrics[selection.metric];
    if (score === undefined) log(`warning: the selection metric '${selection.metric}' was not logged this epoch`);
    if (score === undefined || !better(score, best)) return false;
    best = score;
    return true;
  };
  let step = 0;
  let startEpoch = 0;
  let startBatch = 0;
  let best = selection.mode === 'min' ? Infinity : -Infinity;
  const restored = options.resume ? loadLatestCheckpoint(ckptDir, { modules: instance.modules, optimizers, schedulers }, log) : undefined;
  if (restored) {
    generator.setState(restored.rng.task);
    torch.defaultGenerator().setState(restored.rng.global);
    instance.loadState?.(restored.taskState);
    ({ step, epoch: startEpoch, batch: startBatch } = restored);
    best = (restored.info.best as number | undefined) ?? best;
    if (config.deterministic && restored.info.threads !== torch.getNumThreads()) {
      throw new Error(
        `--deterministic resume needs the same thread count: the checkpoint used ${restored.info.threads}, this run ${torch.getNumThreads()}`,
      );
    }
    const savedWorld = (restored.info.worldSize as number | undefined) ?? 1;
    if (savedWorld !== parallel.worldSize) {
      // The epoch's global order is the same for any world size: continue at the same global sample.
      const samples = startBatch * config.batchSize * savedWorld;
      startBatch = Math.floor(samples / (config.batchSize * parallel.worldSize));
      const exact = startBatch * config.batchSize * parallel.worldSize === samples;
      log(
        `the checkpoint was written by ${savedWorld} rank(s), this run has ${parallel.worldSize}: continuing at sample ${samples} of the epoch` +
          (exact
            ? ''
            : ` (batch ${startBatch}: the first ${samples % (config.batchSize * parallel.worldSize)} samples of it are seen again)`),
      );
    }
    log(`resuming from ${restored.name}: epoch ${startEpoch + 1}, batch ${startBatch}, step ${step}`);
  } else if (options.resume) {
    log(`--resume: no readable checkpoint in ${ckptDir}, starting fresh`);
  }
  // The steps a budget buys, once calibrated, are kept across resumes so the schedule stays the same.
  const budget = config.budget
    ? new BudgetPlan(
        config.budget,
        (restored?.info.budgetSpent as number | undefined) ?? 0,
        restored?.info.plannedSteps as number | undefined,
      )
    : undefined;
  let imagesSeen = (restored?.info.imagesSeen as number | undefined) ?? 0;
  // CPU seconds of this process (rank 0's under data parallelism) over every session of the run, for accuracy-vs-compute curves.
  const [cpuBefore, cpuStart] = [(restored?.info.cpuSeconds as number | undefined) ?? 0, process.cpuUsage()];
  const runCpuSeconds = () => {
    const { user, system } = process.cpuUsage(cpuStart);
    return cpuBefore + (user + system) / 1e6;
  };
  if (budget?.steps !== undefined) layOutSchedules(budget.steps, step);
  parallel.prepareModules(Object.values(instance.modules));
  const epochLimit = () => (budget?.steps === undefined ? config.epochs : Math.ceil(budget.steps / stepsPerEpoch));
  const budgetInfo = () => (budget ? { budgetSpent: budget.clock.spent(), plannedSteps: budget.steps } : {});

  const metricsPath = join(runDir, 'metrics.jsonl');
  const record = (entry: Record<string, unknown>) =>
    parallel.isMain && appendFileSync(metricsPath, JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n');
  let interrupted = false;
  let budgetSpent = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      log(`${signal} again: exiting without a checkpoint`);
      process.exit(130);
    }
    interrupted = true;
    log(`${signal}: stopping after this step (again to exit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const wallStart = performance.now();
  const history: EpochRecord[] = [];
  const prefix = (phase: string, key: string) => (phases.length > 1 ? `${phase}/${key}` : key);
  const lossKeys = new Map(phases.map((p) => [p.name, prefix(p.name, 'loss')]));
  const watchdog = new Watchdog(config.divergence, task.collapse, log);
  const modelName = `${config.backbone}, ${backbone.numParameters().toLocaleString('en-US')} backbone parameters`;
  const budgetNote = config.budget ? `, budget ${formatBudget(config.budget)}` : '';
  const precision = resolvePrecision(config.precision);
  log(
    `pretraining ${task.name} on ${config.data} (${trainIndices.length} images of ${imageSize}x${imageSize}, batch ${config.batchSize}, ` +
      `${stepsPerEpoch} steps/epoch) with ${modelName}, ${torch.getNumThreads()} threads${precision === 'bf16' ? ', bf16 autocast' : ', float32'}${budgetNote}`,
  );

  const context = (epoch: number, resumed: boolean, extra: Record<string, number>): EpochContext => ({
    epoch,
    store,
    indices: trainIndices,
    resumed,
    log,
    batches: (o = {}) =>
      sequentialBatches(
        store,
        o.share ? parallel.share(trainIndices) : trainIndices,
        o.batchSize ?? config.batchSize * samplesPerItem,
        loader,
        imageSize,
      ),
    gatherRows: (rows) => parallel.gatherRows(rows),
    shards: parallel,
    resetOptimizerState(parameters) {
      for (const opt of Object.values(optimizers)) for (const p of parameters) opt.state.delete(p);
    },
    record: (metrics) => Object.assign(extra, metrics),
  });

  try {
    for (let epoch = startEpoch; epoch < epochLimit() && !interrupted && !budgetSpent; epoch++) {
      const epochExtra: Record<string, number> = {};
      await instance.onEpochStart?.(context(epoch, startBatch > 0, epochExtra));
      const order = shardItems(instance.epochOrder?.(epoch, trainIndices), samplesPerItem, parallel);
      const epochSteps = Math.min(order ? loader.batchesIn(order) : loader.batchesPerEpoch, stepsPerEpoch);
      trainMode(instance);
      const meters = new Meters();
      const progress =
        options.progress === false || !parallel.isMain
          ? undefined
          : new Progress(`epoch ${epoch + 1}/${epochLimit()}`, epochSteps, { startAt: startBatch });
      const epochStart = performance.now();
      let images = 0;
      let batchIndex = startBatch;
      for await (const batch of loader.epoch(epoch, Math.min(startBatch, epochSteps), order)) {
        if (batch.index >= epochSteps) {
          disposeBatch(batch);
          break;
        }
        const extraBatches = sources.size ? await sourceBatches(sources, step) : undefined;
        const values = tidy(() => {
          const prepared = instance.prepare(batch, generator, extraBatches);
          const scalars = new Map<string, Tensor | number>();
          for (const phase of phases) {
            if (!runsNow(phase, epoch, step)) continue;
            const opt = optimizers[phase.name];
            withOnlyGrads(new Set(phase.parameters), allParameters, () => {
              opt.zeroGrad();
              const forward = () => instance.step(prepared, phase.name);
              const { loss, metrics } = withPrecision(precision, forward);
              loss.backward();
              parallel.syncGradients(phase.parameters);
              if (config.gradClip) torch.optim.clipGradNorm_(phase.parameters, config.gradClip);
              opt.step();
              scalars.set(prefix(phase.name, 'loss'), loss);
              for (const [k, v] of Object.entries(metrics)) scalars.set(prefix(phase.name, k), v);
            });
          }
          for (const phase of phases) schedulers[phase.name].step();
          return readScalars(scalars);
        });
        images += batch.images.shape[0];
        imagesSeen += batch.images.shape[0];
        disposeBatch(batch);
        Object.values(extraBatches ?? {}).forEach(disposeBatch);
        step++;
        const agreed = parallel.agree(values, interrupted);
        Object.assign(values, agreed.values);
        interrupted = agreed.stop;
        watchdog.check(step, values, lossKeys);
        batchIndex = batch.index + 1;
        meters.add(values);
        const rate = images / ((performance.now() - epochStart) / 1000);
        progress?.setStatus(`${formatMetrics(values)}  ${rate.toFixed(0)} img/s`);
        progress?.update(batchIndex);
        if (step % config.logEverySteps === 0)
          record({ type: 'step', epoch: epoch + 1, step, lr: optimizers[phases[0].name].lr, imagesPerSecond: rate, ...values });
        await yieldToEventLoop();
        if (budget) {
          const plan = budget.afterStep(step);
          if (plan !== undefined) {
            layOutSchedules(plan, step);
            log(
              `budget ${formatBudget(budget.setting)}: ${plan} steps (${(plan / stepsPerEpoch).toFixed(1)} epochs); schedule laid out over them`,
            );
          }
          budgetSpent = parallel.agree({}, budget.finished(step)).stop;
        }
        const endOfEpoch = batchIndex >= epochSteps;
        if (interrupted || (budgetSpent && !endOfEpoch) || (step % config.checkpointEverySteps === 0 && !endOfEpoch)) {
          if (parallel.isMain) {
            saveCheckpoint(ckptDir, state(step, epoch, batchIndex, { best }));
            pruneCheckpoints(ckptDir, config.keepLast);
          }
        }
        if (interrupted || budgetSpent) break;
      }
      progress?.finish();
      startBatch = 0;
      if (interrupted) {
        log(`interrupted: saved a checkpoint at step ${step}; continue with --resume`);
        break;
      }
      if (budgetSpent && batchIndex < epochSteps) {
        log(`budget spent at step ${step}, epoch ${epoch + 1} batch ${batchIndex}: saved a checkpoint`);
        const seconds = (performance.now() - epochStart) / 1000;
        const partial = {
          epoch: epoch + 1,
          steps: step,
          metrics: meters.means(),
          imagesPerSecond: images / seconds,
          seconds,
          lr: optimizers[phases[0].name].lr,
        };
        history.push(partial);
        record({ type: 'epoch', partial: true, ...partial });
        // What the budget bought competes for `best` like a whole epoch.
        if (improves(partial.metrics) && parallel.isMain) {
          saveCheckpoint(ckptDir, state(step, epoch, batchIndex, { best, metrics: partial.metrics, selection }), 'best');
        }
        break;
      }
      await instance.onEpochEnd?.(context(epoch, false, epochExtra));
      const seconds = (performance.now() - epochStart) / 1000;
      const metrics = { ...meters.means(), ...epochExtra };
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
      if (parallel.isMain && task.charts) writeEpochCharts(runDir, task.charts);
      log(
        `epoch ${epoch + 1}/${epochLimit()}  ${formatMetrics(metrics)}  ${entry.imagesPerSecond.toFixed(0)} img/s  ${seconds.toFixed(1)} s`,
      );
      const isBest = improves(metrics);
      const saved = state(step, epoch + 1, 0, { best, metrics, selection });
      if (parallel.isMain) {
        saveCheckpoint(ckptDir, saved);
        if (isBest) saveCheckpoint(ckptDir, saved, 'best');
        pruneCheckpoints(ckptDir, config.keepLast);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await loader.close();
    for (const s of sources.values()) await s.close();
    parallel.close();
  }
  const cpu = process.cpuUsage(cpuStart);
  const stopped = interrupted ? 'signal' : budgetSpent ? 'budget' : 'epochs';
  const [cpuSeconds, wallSeconds] = [(cpu.user + cpu.system) / 1e6, (performance.now() - wallStart) / 1000];
  // The session's last record: how it ended and what it spent (the studio sums these over resumes).
  record({ type: 'end', stopped, cpuSeconds, wallSeconds, imagesSeen, steps: step });
  return {
    config,
    runDir,
    steps: step,
    history,
    interrupted,
    stopped,
    imagesSeen,
    cpuSeconds,
    wallSeconds,
  };
}

/** The training samples in order, unaugmented, normalized as the training loader does. */
async function* sequentialBatches(
  store: SampleStore,
  indices: Int32Array,
  batchSize: number,
  training: DataLoader,
  outputSize: number,
): AsyncIterableIterator<Batch> {
  const loader = new DataLoader(store, { batchSize, shuffle: false, indices, normalize: training.stats(), outputSize });
  try {
    yield* loader.epoch(0);
  } finally {
    await loader.close();
  }
}
