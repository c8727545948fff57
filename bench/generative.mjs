// Generative benchmark: one generator training step in Pretext against plain PyTorch
// (bench/generative.py), in alternating rounds so that machine noise hits every side. PyTorch runs
// tuned (tcmalloc), NCHW and channels-last (Pretext's Conv2d layout). `--model`:
//   superres (default): SRGAN's generator (SRResNet-16, width 64, x2 sub-pixel upsampling), MSE;
//   inpainting: the inpainting task's generator phase (Context Encoder: alexnet encoder on RGB + mask,
//     channel-wise FC bottleneck, decoder; center mask; 0.999 x overlap-weighted L2 + 0.001 x the
//     adversarial loss through the frozen discriminator) with the metrics the task's step logs;
//   colorization: the colorization task's regression step (nin4 on L, decoder to ab, L2) with its metrics.
// Both task models run through the registry (task.create, phases(), step()) as the trainer does;
// Adam with the task's generator settings everywhere. Before timing, the two sides' parameter
// counts and shapes must match. `--side pretext` runs Pretext's side alone (`--describe`: its parameters).
// Last line: {"ratio", "ratio_channels_last", "pretext", "pytorch", "pytorch_channels_last"} (medians in images/s).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    model: { type: 'string', default: 'superres' },
    side: { type: 'string' },
    describe: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '5' },
    batch: { type: 'string', default: '16' },
    size: { type: 'string', default: '32' },
    scale: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '2' },
    'min-steps': { type: 'string', default: '5' },
    'min-seconds': { type: 'string', default: '5' },
    threads: { type: 'string', default: execFileSync('nproc').toString().trim() },
  },
});
const python = '/usr/bin/python3';
const tcmalloc = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';
const shared = ['model', 'batch', 'size', 'scale', 'warmup', 'min-steps', 'min-seconds', 'threads'].flatMap((k) => [`--${k}`, opts[k]]);
const [batch, size, scale] = [Number(opts.batch), Number(opts.size), Number(opts.scale)];

/** Each model's Pretext side: the parameters Adam trains, the frozen ones, 4 input batches, and a step returning the scalars to read (loss first). */
const pretextModels = {
  /** The SR task's generator without the task around it: the registered srresnet trunk + sub-pixel upsampler. */
  async superres(torch) {
    const { createBackbone, SubPixelUpsampler } = await import('pretext');
    const trunk = createBackbone('srresnet');
    const upsampler = new SubPixelUpsampler(trunk.outChannels, 3, scale, 64);
    const low = size / scale;
    return {
      title: `SRResNet-16 generator step (x${scale}, ${low} -> ${size} px, batch ${batch}, MSE, Adam)`,
      trained: [...trunk.parameters(), ...upsampler.parameters()],
      frozen: [],
      pool: Array.from({ length: 4 }, () => [torch.randn([batch, 3, low, low]), torch.randn([batch, 3, size, size])].map(torch.keep)),
      step: ([x, y]) => [torch.nn.functional.mseLoss(upsampler.forward(trunk.forward(x)), y)],
    };
  },
  inpainting: (torch, task) =>
    taskModel(
      torch,
      task,
      {},
      (backbone) =>
        `Context Encoder generator step (${backbone} encoder on RGB + mask, channel-wise FC, decoder, center mask, ${size} px, batch ${batch}, 0.999 overlap-weighted L2 + 0.001 adversarial, Adam)`,
    ),
  colorization: (torch, task) =>
    taskModel(
      torch,
      task,
      { loss: 'regression' },
      (backbone) => `colorization regression step (${backbone} encoder on L, decoder to ab, ${size} px, batch ${batch}, L2 on ab, Adam)`,
    ),
};

/**
 * A registered task's first (generator) phase as the trainer runs it: task.create on the task's
 * default backbone, RGB data of `size` px, prepare() outside the timing, step() inside it, the
 * other phases' parameters frozen.
 */
async function taskModel(torch, task, taskOptions, title) {
  const { createBackbone } = await import('pretext');
  const dataChannels = 3;
  const options = task.options.parse(taskOptions);
  const backbone = createBackbone(task.defaults.backbone, task.inputChannels?.(dataChannels, options) ?? dataChannels);
  const instance = task.create(backbone, options, { inChannels: dataChannels, imageSize: size });
  const [phase] = instance.phases();
  const own = new Set(phase.parameters);
  const frozen = Object.values(instance.modules)
    .flatMap((m) => m.parameters())
    .filter((p) => !own.has(p));
  for (const p of frozen) p.requiresGrad_(false);
  for (const m of Object.values(instance.modules)) m.train();
  const generator = new torch.Generator(1);
  const images = () => ({
    images: torch.rand([batch, dataChannels, size, size]),
    labels: torch.zeros([batch], 'int64'),
    indices: torch.arange(0, batch, 1, 'int64'),
    index: 0,
  });
  const pool = Array.from({ length: 4 }, () =>
    torch.tidy(() => {
      const { inputs, targets, extra = {} } = instance.prepare(images(), generator);
      const kept = Object.fromEntries(Object.entries(extra).map(([k, t]) => [k, torch.keep(t)]));
      return { inputs: torch.keep(inputs), targets: torch.keep(targets), extra: kept };
    }),
  );
  return {
    title: title(task.defaults.backbone),
    trained: phase.parameters,
    frozen,
    pool,
    step(prepared) {
      const { loss, metrics } = instance.step(prepared, phase.name);
      return [loss, ...Object.values(metrics).filter((v) => typeof v !== 'number')];
    },
  };
}

/** Adam settings of a task's generator phase (or its only one). */
function generatorAdam(task) {
  const setting = 'name' in task.defaults.optimizer ? task.defaults.optimizer : task.defaults.optimizer.generator;
  if (setting.name !== 'adam') throw new Error(`bench: ${task.name}'s generator optimizer is ${setting.name}, not Adam`);
  return { lr: setting.lr, betas: setting.betas ?? [0.9, 0.999], weightDecay: setting.weightDecay ?? 0 };
}

/** Count and sorted shapes of parameters, as generative.py's describe() prints them. */
const describe = (params) => ({ count: params.reduce((n, p) => n + p.numel(), 0), shapes: params.map((p) => p.shape.join('x')).sort() });

/** Pretext's side: `--describe` prints the parameters, the title and Adam settings; else the step, timed. */
async function pretextSide() {
  const torch = await import('@pretext/torch');
  const { getTask } = await import('pretext/tasks/registry');
  const { optim, tidy } = torch;
  torch.setNumThreads(Number(opts.threads));
  torch.manualSeed(0);
  const task = getTask(opts.model);
  const model = await pretextModels[opts.model](torch, task);
  const adam = generatorAdam(task);
  if (opts.describe) {
    console.log(
      JSON.stringify({ title: model.title, adam, parameters: { trained: describe(model.trained), frozen: describe(model.frozen) } }),
    );
    return;
  }
  const opt = new optim.Adam(model.trained, adam);
  let [start, measured, elapsed, loss] = [0, 0, 0, 0];
  for (let step = 1; ; step++) {
    loss = tidy(() => {
      opt.zeroGrad();
      const scalars = model.step(model.pool[step % 4]);
      scalars[0].backward();
      opt.step();
      // Read together, as the trainer reads a step's loss and metrics.
      return torch.stack(scalars.map((t) => t.detach().reshape([]).toDtype('float64'))).toArray()[0];
    });
    if (step === Number(opts.warmup)) start = performance.now();
    else if (step > Number(opts.warmup)) {
      measured++;
      elapsed = (performance.now() - start) / 1000;
      if (measured >= Number(opts['min-steps']) && elapsed >= Number(opts['min-seconds'])) {
        console.log(JSON.stringify({ images_per_s: (measured * batch) / elapsed, steps: step, loss }));
        return;
      }
    }
  }
}

/** Runs one side in its own process (PyTorch with Pretext's `adam` settings); returns its last JSON line. */
function run(side, { describe = false, adam } = {}) {
  const common = [...shared, ...(describe ? ['--describe'] : [])];
  const adamArgs = adam ? ['--lr', adam.lr, '--betas', ...adam.betas, '--weight-decay', adam.weightDecay].map(String) : [];
  const [cmd, argv, env] =
    side === 'pretext'
      ? [process.execPath, [fileURLToPath(import.meta.url), '--side', 'pretext', ...common], {}]
      : [
          python,
          [join(here, 'generative.py'), ...common, ...adamArgs, ...(side === 'pytorch-channels-last' ? ['--channels-last'] : [])],
          { LD_PRELOAD: tcmalloc },
        ];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${side} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const summary = (xs) => ({ min: sorted(xs)[0], median: sorted(xs)[Math.floor(xs.length / 2)], max: sorted(xs).at(-1) });

if (!Object.hasOwn(pretextModels, opts.model)) throw new Error(`bench: --model must be one of ${Object.keys(pretextModels).join(', ')}`);
if (opts.side === 'pretext') await pretextSide();
else {
  if (spawnSync(python, ['-c', 'import torch']).status !== 0 || !existsSync(tcmalloc)) {
    throw new Error('bench: needs Debian python3-torch and libtcmalloc-minimal4 (npm run bench:engine installs them)');
  }
  // The same network on both sides: equal parameter counts and shapes, trained and frozen.
  const pretext = run('pretext', { describe: true });
  const pytorch = run('pytorch', { describe: true });
  if (JSON.stringify(pretext.parameters) !== JSON.stringify(pytorch.parameters)) {
    throw new Error(
      `bench: the models differ:\n Pretext ${JSON.stringify(pretext.parameters)}\n PyTorch ${JSON.stringify(pytorch.parameters)}`,
    );
  }
  const { adam } = pretext;
  console.log(`generative benchmark: ${pretext.title}, ${opts.threads} threads, ${opts.rounds} alternating rounds`);
  const { trained, frozen } = pretext.parameters;
  console.log(
    `  parameters: ${trained.count} trained (${trained.shapes.length} tensors), ${frozen.count} frozen (${frozen.shapes.length}): ` +
      `counts and shapes identical in Pretext and PyTorch; Adam lr ${adam.lr}, betas ${adam.betas.join(', ')}`,
  );
  const speed = { pretext: [], pytorch: [], 'pytorch-channels-last': [] };
  for (let round = 0; round < Number(opts.rounds); round++) {
    for (const side of Object.keys(speed)) {
      speed[side].push(run(side, { adam }).images_per_s);
      console.log(`  round ${round + 1} ${side.padEnd(22)} ${speed[side].at(-1).toFixed(1)} images/s`);
    }
  }
  const s = Object.fromEntries(Object.entries(speed).map(([side, xs]) => [side, summary(xs)]));
  for (const [side, { min, median, max }] of Object.entries(s)) {
    console.log(`${side.padEnd(22)} min ${min.toFixed(1)}  median ${median.toFixed(1)}  max ${max.toFixed(1)} images/s`);
  }
  const ratio = s.pretext.median / s.pytorch.median;
  const ratioChannelsLast = s.pretext.median / s['pytorch-channels-last'].median;
  console.log(`ratio (Pretext / PyTorch tuned, medians): ${ratio.toFixed(2)}; against channels-last ${ratioChannelsLast.toFixed(2)}`);
  console.log(
    JSON.stringify({
      ratio,
      ratio_channels_last: ratioChannelsLast,
      pretext: s.pretext.median,
      pytorch: s.pytorch.median,
      pytorch_channels_last: s['pytorch-channels-last'].median,
    }),
  );
}
