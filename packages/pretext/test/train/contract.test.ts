// Each hook of the task contract, pinned with a small fake task that the trainer runs in-process:
// per-phase optimizers, alternation and gradient isolation, the selection metric, divergence and
// collapse, task state across resume, epoch work over the dataset, samplers with tuples, optimizer
// state resets, and a second data source.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, test } from 'node:test';
import { cpu, nn, safetensors, tensor, type Tensor } from '@pretext/torch';
import { z } from 'zod';
import { datasetStats, disposeBatch, type Batch } from '../../src/data/loader.js';
import { writeStore } from '../../src/data/store.js';
import type { SampleStore } from '../../src/data/store.js';
import { tasks } from '../../src/tasks/registry.js';
import type { EpochContext, OptimizerPhase, PretextBatch, PretextTask, StepResult, TaskInstance, TaskState } from '../../src/tasks/task.js';
import { parseBudget } from '../../src/config/schema.js';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { DivergenceError, resolveConfig, train } from '../../src/train/trainer.js';
import { subsetIndices } from '../../src/util/random.js';

const tempDirs: string[] = [];
after(() => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pretext-contract-'));
  tempDirs.push(dir);
  return dir;
}

/** 4x4 RGB images whose pixels all equal the sample index (so a batch tells which samples it holds). */
function indexStore(n: number, offset = 0): SampleStore {
  const images = new Uint8Array(n * 16 * 3);
  for (let i = 0; i < n; i++) images.fill((i + offset) % 256, i * 48, (i + 1) * 48);
  return {
    images,
    n,
    height: 4,
    width: 4,
    channels: 3,
    labels: Int32Array.from({ length: n }, (_, i) => i % 3),
    classNames: ['a', 'b', 'c'],
    paths: Array.from({ length: n }, (_, i) => `s${i + offset}`),
  };
}

/** What the fake task saw, for the assertions. */
interface Trace {
  calls: string[];
  frozenOthers: boolean[];
  epochStarts: { epoch: number; resumed: boolean; samples: number[] }[];
  batchSamples: number[][];
  sourceMeans: number[];
  stepsSeen: number;
  dtypes: string[];
}

const fakeOptions = z
  .object({
    samplesPerItem: z.number().int().default(1),
    useOrder: z.boolean().default(false),
    resetAtEpoch: z.number().int().default(-1),
  })
  .strict();

let trace: Trace;
/** The generator step (task-state count) at which the loss turns NaN; -1 never. */
let nanAtStep = -1;
const newTrace = (): Trace => ({
  calls: [],
  frozenOthers: [],
  epochStarts: [],
  batchSamples: [],
  sourceMeans: [],
  stepsSeen: 0,
  dtypes: [],
});

/** Sample index of each image of a batch, recovered from the index store's constant pixels. */
function samplesOf(batch: Batch, store: SampleStore): number[] {
  const { mean, std } = datasetStats(store);
  return batch.images.select(1, 0).mean([1, 2]).mul(std[0]).add(mean[0]).mul(255).round().toArray();
}

class FakeInstance implements TaskInstance {
  readonly modules: { backbone: nn.Module; generator: nn.Linear; discriminator: nn.Linear };
  counter: Tensor = tensor([0]);
  private steps = 0;

  constructor(
    backbone: nn.Module,
    private readonly options: z.infer<typeof fakeOptions>,
    private readonly store: SampleStore,
  ) {
    this.modules = { backbone, generator: new nn.Linear(3, 3), discriminator: new nn.Linear(3, 1) };
  }

  phases(): OptimizerPhase[] {
    return [
      { name: 'discriminator', parameters: this.modules.discriminator.parameters(), active: ({ step }) => step >= 1 },
      { name: 'generator', parameters: this.modules.generator.parameters(), every: 2 },
    ];
  }

  prepare(batch: Batch, _generator: unknown, sources?: Record<string, Batch>): PretextBatch {
    trace.batchSamples.push(samplesOf(batch, this.store));
    if (sources?.real) trace.sourceMeans.push(sources.real.images.mean().item());
    const inputs = batch.images.mean([2, 3]);
    return { inputs, targets: inputs };
  }

  step(batch: PretextBatch, phase: string): StepResult {
    trace.calls.push(`${phase}@${this.steps}`);
    const own = phase === 'generator' ? this.modules.generator : this.modules.discriminator;
    const other = phase === 'generator' ? this.modules.discriminator : this.modules.generator;
    trace.frozenOthers.push(other.parameters().every((p) => !p.requiresGrad) && own.parameters().every((p) => p.requiresGrad));
    // Both losses run through both modules, so only the trainer keeps gradients apart.
    const score = this.modules.discriminator.forward(this.modules.generator.forward(batch.inputs));
    trace.dtypes.push(score.dtype);
    let loss = phase === 'generator' ? score.square().mean() : score.sub(1).square().mean();
    if (phase === 'generator') {
      if (this.steps === nanAtStep) loss = loss.mul(Number.NaN);
      this.steps++;
    }
    this.counter.add_(1);
    return { loss, metrics: { quality: phase === 'generator' ? -this.steps : 0, acc: phase === 'discriminator' ? 1 : 0 } };
  }

  answers(): never[] {
    return [];
  }

  onEpochStart = async (context: EpochContext) => {
    const samples: number[] = [];
    for await (const batch of context.batches({ batchSize: 5 })) {
      samples.push(...samplesOf(batch, this.store));
      disposeBatch(batch);
    }
    trace.epochStarts.push({ epoch: context.epoch, resumed: context.resumed, samples });
    if (context.epoch === this.options.resetAtEpoch) context.resetOptimizerState(this.modules.generator.parameters());
    context.record({ epochWork: context.epoch + 1 });
  };

  epochOrder(epoch: number, indices: Int32Array): Int32Array | undefined {
    if (!this.options.useOrder) return undefined;
    const s = this.options.samplesPerItem;
    // Items of s consecutive samples, in reverse order of the items' first sample, shifted by the epoch.
    const items = Math.floor(indices.length / s);
    return Int32Array.from({ length: items * s }, (_, k) => indices[((items - 1 - Math.floor(k / s) + epoch) % items) * s + (k % s)]);
  }

  state(): TaskState {
    return { tensors: { counter: this.counter }, json: { steps: this.steps } };
  }

  loadState(state: TaskState): void {
    this.counter = state.tensors!.counter.clone();
    this.steps = (state.json as { steps: number }).steps;
  }
}

const fakeTask: PretextTask<typeof fakeOptions> = {
  name: 'fake',
  description: 'a fake task for the contract tests',
  paper: 'none',
  options: fakeOptions,
  defaults: {
    backbone: 'alexnet-small',
    epochs: 2,
    batchSize: 4,
    optimizer: { generator: { name: 'sgd', lr: 0.01, momentum: 0.9 }, discriminator: { name: 'adam', lr: 0.001, betas: [0.5, 0.999] } },
  },
  selection: { metric: 'generator/quality', mode: 'max' },
  collapse: { metric: 'discriminator/acc', steps: 3 },
  charts: [{ name: 'work', title: 'epoch work', yLabel: 'count', series: [{ metric: 'epochWork', label: 'epochs started' }] }],
  create(backbone, options, context) {
    return new FakeInstance(backbone, options, context.store!);
  },
  picture() {
    throw new Error('not used');
  },
};
tasks.fake = fakeTask as unknown as PretextTask;
// The order hook is only used when the test asks for it: the trainer checks for the method.
const sampledTask = { ...fakeTask, name: 'fake-tuples', data: { samplesPerItem: 3 } } as PretextTask;
tasks['fake-tuples'] = sampledTask;
const twoSourceTask = { ...fakeTask, name: 'fake-sources', data: { sources: { real: { description: 'real images' } } } } as PretextTask;
tasks['fake-sources'] = twoSourceTask;

async function run(config: Record<string, unknown>, store: SampleStore, resume = false) {
  trace = newTrace();
  const lines: string[] = [];
  const result = await train(
    // The memory check's dry steps would run the fake's prepare and step too; it has its own test below.
    { task: 'fake', data: 'memory', threads: 1, memoryCheck: false, ...config },
    { store, progress: false, resume, log: (l) => lines.push(l) },
  );
  return { result, lines };
}

test('per-phase optimizers come from task defaults and --set overrides each phase by name', () => {
  const base = { task: 'fake', data: 'x', out: 'o' };
  const config = resolveConfig({ ...base, optimizer: { discriminator: { lr: 0.0002 } } });
  assert.deepEqual(config.optimizer, {
    generator: { name: 'sgd', lr: 0.01, momentum: 0.9, nesterov: false, weightDecay: 0 },
    discriminator: { name: 'adam', lr: 0.0002, betas: [0.5, 0.999], weightDecay: 0 },
  });
  // A shared key (a --lr flag) applies to every phase.
  const shared = resolveConfig({ ...base, optimizer: { lr: 0.5 } }).optimizer as Record<string, { lr: number }>;
  assert.deepEqual([shared.generator.lr, shared.discriminator.lr], [0.5, 0.5]);
  assert.throws(() => resolveConfig({ ...base, optimizer: { discriminator: { lr: -1 } } }), /'optimizer\.discriminator\.lr' = -1/);
});

test('a config naming a phase the task lacks is refused with the field', async () => {
  const out = tempDir();
  await assert.rejects(
    run({ out, optimizer: { critic: { name: 'sgd', lr: 0.1 } } }, indexStore(16)),
    /config field 'optimizer.critic': no such phase; the task's phases are discriminator, generator/,
  );
});

test('phases alternate in order with their ratio and start, and never write into each other', async () => {
  const out = tempDir();
  const { result, lines } = await run({ out, epochs: 1, limit: 16 }, indexStore(16));
  assert.equal(result.steps, 4);
  // Step 0: the discriminator is not active yet; the generator runs every 2nd step.
  assert.deepEqual(trace.calls, ['generator@0', 'discriminator@1', 'discriminator@1', 'generator@1', 'discriminator@2']);
  assert.ok(trace.frozenOthers.every(Boolean), 'other phases are frozen while a phase runs');
  // The discriminator's accuracy metric stayed at 1: the collapse warning fires after 3 steps.
  assert.ok(
    lines.some((l) => /warning: discriminator\/acc has been 1 for 3 steps/.test(l)),
    lines.join('\n'),
  );
});

test('the selection metric picks best, with its direction', async () => {
  const out = tempDir();
  const { result } = await run({ out, epochs: 2, limit: 16 }, indexStore(16));
  // quality = -steps taken by the generator: it falls every epoch, so under 'max' best stays epoch 1.
  const best = JSON.parse(readFileSync(join(out, 'checkpoints', 'best.json'), 'utf8'));
  assert.equal(best.epoch, 1);
  assert.equal(best.info.best, result.history[0].metrics['generator/quality']);
  assert.ok(result.history[1].metrics['generator/quality'] < result.history[0].metrics['generator/quality']);
});

test('a NaN loss stops the run naming the phase, step and value; the last good checkpoint stays and resume goes on', async () => {
  const out = tempDir();
  nanAtStep = 3;
  try {
    await assert.rejects(
      run({ out, epochs: 3, limit: 16 }, indexStore(16)),
      (e: Error) => e instanceof DivergenceError && /phase 'generator' at step 7 has loss NaN/.test(e.message),
    );
  } finally {
    nanAtStep = -1;
  }
  const kept = listCheckpoints(join(out, 'checkpoints'));
  assert.equal(kept.at(-1)!.step, 4, 'the end-of-epoch-1 checkpoint is the last one');
  const { result } = await run({ out, epochs: 3, limit: 16 }, indexStore(16), true);
  assert.equal(result.steps, 12);
  // Step 4 runs the discriminator, then the generator, whose count came back with the task state.
  assert.deepEqual(trace.calls.slice(0, 2), ['discriminator@2', 'generator@2']);
});

test('task state is saved with checkpoints and restored on resume; a truncated latest checkpoint falls back', async () => {
  const out = tempDir();
  await run({ out, epochs: 2, limit: 16 }, indexStore(16));
  const ckpts = listCheckpoints(join(out, 'checkpoints'));
  const latest = ckpts.at(-1)!;
  const sidecar = JSON.parse(readFileSync(latest.sidecar, 'utf8'));
  assert.deepEqual(sidecar.taskState, { steps: 4 });
  // Damage the latest sidecar and leave an orphaned temporary file, as a kill mid-write would.
  truncateSync(latest.sidecar, 20);
  writeFileSync(join(out, 'checkpoints', '.ckpt-000000009.safetensors.123.tmp'), 'partial');
  const { result, lines } = await run({ out: `./${relative(process.cwd(), out)}`, epochs: 3, limit: 16 }, indexStore(16), true);
  assert.ok(
    lines.some((l) => / is unreadable/.test(l) && resolve(/sidecar (\S+) is/.exec(l)?.[1] ?? '') === resolve(latest.sidecar)),
    lines.join('\n'),
  );
  assert.ok(lines.some((l) => /removed 1 temporary file/.test(l)));
  assert.ok(!readdirSync(join(out, 'checkpoints')).some((f) => f.endsWith('.tmp')));
  // Fell back to the end of epoch 1 (4 steps), so two more epochs ran.
  assert.equal(result.steps, 12);
  assert.deepEqual(trace.calls.slice(0, 2), ['discriminator@2', 'generator@2']);
});

test('epoch work sees every training sample in order, unaugmented, and records its metrics, charted per epoch', async () => {
  const out = tempDir();
  const store = indexStore(20);
  const { result } = await run({ out, epochs: 2, limit: 12, augment: { horizontalFlip: 0.5, colorJitter: { brightness: 0.8 } } }, store);
  const expected = [...subsetIndices(20, 12, 0)];
  assert.equal(trace.epochStarts.length, 2);
  for (const start of trace.epochStarts) assert.deepEqual(start.samples, expected);
  assert.deepEqual(
    result.history.map((h) => h.metrics.epochWork),
    [1, 2],
  );
  // The task's chart: one dot per epoch, at (epoch, epochWork), the second above the first.
  const svg = readFileSync(join(out, 'charts', 'work.svg'), 'utf8');
  assert.match(svg, /epochs started/);
  const dots = [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"[^>]*><title>epochs started: (\d+), (\d+)</g)];
  assert.deepEqual(
    dots.map((d) => [Number(d[3]), Number(d[4])]),
    [
      [1, 1],
      [2, 2],
    ],
  );
  assert.ok(Number(dots[1][1]) > Number(dots[0][1]) && Number(dots[1][2]) < Number(dots[0][2]), 'later and higher');
});

test('a task sampler orders the epoch, with tuples of samples per item', async () => {
  const out = tempDir();
  const store = indexStore(24);
  await run({ task: 'fake-tuples', out, epochs: 2, batchSize: 2, taskOptions: { useOrder: true, samplesPerItem: 3 } }, store);
  const instanceOrder = (epoch: number) => {
    const indices = Int32Array.from({ length: 24 }, (_, i) => i);
    const items = 8;
    return Array.from({ length: 24 }, (_, k) => indices[((items - 1 - Math.floor(k / 3) + epoch) % items) * 3 + (k % 3)]);
  };
  // batchSize 2 items of 3 samples: each batch holds 6 consecutive entries of the order.
  assert.equal(trace.batchSamples.length, 8);
  assert.ok(trace.batchSamples.every((b) => b.length === 6));
  assert.deepEqual(trace.batchSamples.slice(0, 4).flat(), instanceOrder(0));
  assert.deepEqual(trace.batchSamples.slice(4).flat(), instanceOrder(1));
});

test("resetOptimizerState clears a head's momentum at an epoch boundary", async () => {
  const momentum = async (resetAtEpoch: number) => {
    const out = tempDir();
    await run({ out, epochs: 2, limit: 16, taskOptions: { resetAtEpoch } }, indexStore(16));
    const last = listCheckpoints(join(out, 'checkpoints')).at(-1)!;
    const { tensors } = safetensors.load(last.sidecar.replace(/\.json$/, '.safetensors'));
    const buffers = [...tensors].filter(([k]) => k.startsWith('optim.generator.'));
    assert.ok(buffers.length > 0);
    return buffers.map(([, t]) => t.toArray()).flat(2) as number[];
  };
  const kept = await momentum(-1);
  const reset = await momentum(1);
  // Same data and seeds: only the cleared momentum of epoch 1 tells the two runs apart.
  assert.equal(kept.length, reset.length);
  assert.ok(kept.some((v, i) => Math.abs(v - reset[i]) > 1e-6));
});

test('a second data source reaches prepare() batch by batch', async () => {
  const out = tempDir();
  const real = indexStore(8, 200);
  const store = indexStore(16);
  await assert.rejects(run({ task: 'fake-sources', out, epochs: 1 }, store), /config field 'sources.real' is missing/);
  const dir = tempDir();
  const path = join(dir, 'real.pxs');
  writeStore(path, real);
  await run({ task: 'fake-sources', out, epochs: 2, sources: { real: path } }, store);
  assert.equal(trace.sourceMeans.length, 8);
  // Two different batches of the 8-sample real store per epoch, cycling into its next epoch.
  assert.ok(trace.sourceMeans.every((m) => Number.isFinite(m)));
  assert.notEqual(trace.sourceMeans[0], trace.sourceMeans[1]);
});

test('budgets parse from the CLI forms and refuse others', () => {
  assert.deepEqual(parseBudget('30cpu-min'), { cpuMinutes: 30 });
  assert.deepEqual(parseBudget('15min'), { wallMinutes: 15 });
  assert.deepEqual(parseBudget('2.5 cpumin'), { cpuMinutes: 2.5 });
  assert.throws(() => parseBudget('30'), /budget '30': expected a positive number of minutes/);
  assert.throws(() => parseBudget('0min'), /positive/);
  assert.throws(() => resolveConfig({ task: 'fake', data: 'x', out: 'o', budget: {} }), /exactly one of cpuMinutes and wallMinutes/);
  // Config files and bench rows state budgets in the same words as the flag.
  assert.equal(resolveConfig({ task: 'fake', data: 'x', out: 'o', budget: '30cpu-min' }).budget?.cpuMinutes, 30);
});

test('a budgeted run stops at the budget with the schedule decayed to its end', async () => {
  const out = tempDir();
  const budget = { wallMinutes: 0.03, calibrationSteps: 5 };
  const schedule = { name: 'cosine', minLrRatio: 0 };
  const { result, lines } = await run({ out, epochs: 1000, limit: 16, budget, schedule, logEverySteps: 1 }, indexStore(16));
  assert.equal(result.stopped, 'budget');
  const plan = Number(/budget 0.03min: (\d+) steps/.exec(lines.join('\n'))?.[1]);
  assert.ok(plan > 6 && result.steps <= plan, `planned ${plan}, ran ${result.steps}`);
  assert.ok(result.wallSeconds < 0.03 * 60 + 5, `${result.wallSeconds} s`);
  assert.equal(result.imagesSeen, result.steps * 4);
  const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.type === 'step');
  const lastLr = steps.at(-1).lr;
  // The cosine schedule runs over the planned steps, so the last rate is its value at that point of the plan.
  const expected = 0.001 * 0.5 * (1 + Math.cos((Math.PI * result.steps) / plan)); // the first phase: discriminator, Adam 0.001
  assert.ok(Math.abs(lastLr - expected) < 1e-9, `last lr ${lastLr}, cosine over ${plan} steps gives ${expected}`);
  const sidecar = JSON.parse(readFileSync(listCheckpoints(join(out, 'checkpoints')).at(-1)!.sidecar, 'utf8'));
  assert.equal(sidecar.info.plannedSteps, plan);
  assert.ok(sidecar.info.budgetSpent > 0);
});

test("--precision bf16 runs every phase under CPU autocast, fp32 none, and 'auto' (the default) as this CPU decides", async () => {
  const out = tempDir();
  const { lines } = await run({ out, epochs: 1, limit: 16, precision: 'bf16' }, indexStore(16));
  assert.ok(trace.dtypes.length > 0 && trace.dtypes.every((d) => d === 'bfloat16'), trace.dtypes.join());
  assert.ok(lines.some((l) => /bf16 autocast/.test(l)));
  await run({ out: tempDir(), epochs: 1, limit: 16, precision: 'fp32' }, indexStore(16));
  const plain: string[] = trace.dtypes;
  assert.ok(plain.length > 0 && plain.every((d) => d === 'float32'), plain.join());
  const auto = tempDir();
  await run({ out: auto, epochs: 1, limit: 16 }, indexStore(16));
  const expected = cpu.isBf16Supported() ? 'bfloat16' : 'float32';
  assert.ok(trace.dtypes.length > 0 && trace.dtypes.every((d) => d === expected), trace.dtypes.join());
  assert.equal(JSON.parse(readFileSync(join(auto, 'config.json'), 'utf8')).precision, expected === 'bfloat16' ? 'bf16' : 'fp32');
});

test('before the first step, a dry-step memory estimate is logged (and the dry steps leave no trace in training)', async () => {
  const out = tempDir();
  const { lines, result } = await run({ out, epochs: 1, limit: 16, memoryCheck: true }, indexStore(16));
  assert.ok(
    lines.some((l) => /^memory: a step at batch 4 needs about \d+\.\d+ GiB$/.test(l)),
    lines.join('\n'),
  );
  assert.equal(result.steps, 4);
});
