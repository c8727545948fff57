// Each CLI command: its options, help and implementation.
import { writeFileSync } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';
import * as torch from '@pretext/torch';
import { builtinDatasets, resolveDataset } from '../data/datasets.js';
import { DataLoader, disposeBatch } from '../data/loader.js';
import { ingestImages } from '../data/ingest.js';
import { ingestVideos } from '../data/video.js';
import { writeSyntheticGrid } from '../data/synthetic/index.js';
import { backbones, createBackbone } from '../models/index.js';
import { getTask, tasks } from '../tasks/registry.js';
import { isClassAnswer, type Answer } from '../tasks/task.js';
import { mergeConfig, parseAssignment, readConfigFile } from '../config/schema.js';
import { loadPretrained } from '../train/pretrained.js';
import { subsetIndices, train } from '../train/trainer.js';
import { writeGrid } from '../viz/grid.js';
import {
  embed,
  evaluate,
  evaluateAllLayers,
  evaluateBackbone,
  randomBackbone,
  readBenchConfig,
  runBench,
  FEATURE_PROTOCOLS,
  PROTOCOLS,
  type EvalResult,
  type FeatureProtocol,
  type Pool,
  type Protocol,
} from '../eval/index.js';

type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  summary: string;
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Values, positionals: string[]): Promise<number | void>;
}

const str = (v: Values[string]) => (typeof v === 'string' ? v : undefined);

function num(values: Values, name: string): number | undefined {
  const v = str(values[name]);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got '${v}'`);
  return n;
}

function required(values: Values, name: string): string {
  const v = str(values[name]);
  if (!v) throw new Error(`--${name} is required`);
  return v;
}

const pretrainFlags = {
  task: 'task',
  data: 'data',
  backbone: 'backbone',
  out: 'out',
} as const;
const numericFlags = {
  epochs: 'epochs',
  'batch-size': 'batchSize',
  limit: 'limit',
  'image-size': 'imageSize',
  seed: 'seed',
  threads: 'threads',
  'steps-per-epoch': 'stepsPerEpoch',
  'checkpoint-every': 'checkpointEverySteps',
  'keep-last': 'keepLast',
  'log-every': 'logEverySteps',
  'grad-clip': 'gradClip',
} as const;

/** Flags of the further data sources that tasks declare (`--real cifar10` sets `sources.real`). */
const sourceFlags = () => [...new Set(Object.values(tasks).flatMap((t) => Object.keys(t.data?.sources ?? {})))];

/** Config layers from --config, flags and --set, in that order of precedence. */
function configFromArgs(values: Values): Record<string, unknown> {
  const file = str(values.config) ? readConfigFile(str(values.config)!) : {};
  const flags: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(pretrainFlags)) if (str(values[flag])) flags[key] = str(values[flag]);
  for (const [flag, key] of Object.entries(numericFlags)) {
    const n = num(values, flag);
    if (n !== undefined) flags[key] = n;
  }
  if (values.deterministic) flags.deterministic = true;
  const sources = Object.fromEntries(sourceFlags().flatMap((name) => (str(values[name]) ? [[name, str(values[name])]] : [])));
  if (Object.keys(sources).length) flags.sources = sources;
  const lr = num(values, 'lr');
  const sets = ((values.set as string[] | undefined) ?? []).map(parseAssignment);
  const merged = mergeConfig(file, flags, ...sets);
  if (lr !== undefined) merged.optimizer = { ...(merged.optimizer as object), lr };
  return merged;
}

const pretrain: Command = {
  summary: 'train a backbone on a pretext task',
  help: `pretext pretrain --task <${Object.keys(tasks).join('|')}> --data <folder|store|${Object.keys(builtinDatasets).join('|')}> --out runs/x [options]

  --config FILE        JSON or YAML config (flags override it)
  --backbone NAME      ${Object.keys(backbones).join(', ')}
  --epochs N  --batch-size N  --lr X  --seed N  --limit N (a seeded subset)
  --image-size S       resize inputs to S x S
  --steps-per-epoch N  cap batches per epoch
  --set key.path=VAL   override any config field (repeatable), e.g. --set optimizer.momentum=0.8
  --resume             continue from the latest checkpoint in --out
  --deterministic      bit-exact resumption (fixed threads, RNG and loader state saved)
  --threads N  --checkpoint-every STEPS  --keep-last K  --log-every STEPS  --grad-clip NORM${Object.values(tasks)
    .flatMap((t) => Object.entries(t.data?.sources ?? {}).map(([name, s]) => `\n  --${name} DATA${' '.repeat(Math.max(1, 14 - name.length))}${t.name}: ${s.description}`))
    .join('')}`,
  options: {
    config: { type: 'string' },
    ...Object.fromEntries(sourceFlags().map((name) => [name, { type: 'string' as const }])),
    ...Object.fromEntries(Object.keys({ ...pretrainFlags, ...numericFlags, lr: 1 }).map((k) => [k, { type: 'string' as const }])),
    set: { type: 'string', multiple: true },
    resume: { type: 'boolean' },
    deterministic: { type: 'boolean' },
  },
  async run(values) {
    const result = await train(configFromArgs(values), { resume: values.resume === true });
    const last = result.history.at(-1);
    console.log(
      JSON.stringify({
        runDir: result.runDir,
        steps: result.steps,
        interrupted: result.interrupted,
        lastEpoch: last,
        cpuMinutes: +(result.cpuSeconds / 60).toFixed(2),
        wallMinutes: +(result.wallSeconds / 60).toFixed(2),
      }),
    );
    return result.interrupted ? 130 : 0;
  },
};

const listTasks: Command = {
  summary: 'list the pretext tasks',
  help: 'pretext tasks',
  options: {},
  async run() {
    for (const t of Object.values(tasks)) console.log(`${t.name.padEnd(12)} ${t.description}`);
  },
};

const listBackbones: Command = {
  summary: 'list the backbones',
  help: 'pretext backbones',
  options: {},
  async run() {
    for (const [name, b] of Object.entries(backbones)) console.log(`${name.padEnd(16)} ${b.description}`);
  },
};

/** `k/n right` for class answers, the mean score for image answers. */
function answerSummary(answers: Answer[]): string {
  const classes = answers.filter(isClassAnswer);
  if (classes.length) return `${classes.filter((a) => a.correct).length}/${classes.length} right`;
  const scores = answers.flatMap((a) => ('score' in a && a.score ? [a.score] : []));
  if (!scores.length) return `${answers.length} answers`;
  return `mean ${scores[0].name} ${(scores.reduce((t, s) => t + s.value, 0) / scores.length).toFixed(2)}`;
}

const show: Command = {
  summary: 'picture what a task asks of the model (and its answers, given --checkpoint)',
  help: `pretext show --data <data> --out grid.png [--task <task>] [--checkpoint runs/x] [--count N] [--seed N]

Without --task on synthetic data, shows RGB, depth, normals and contours of rendered scenes.`,
  options: {
    task: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    checkpoint: { type: 'string' },
    count: { type: 'string' },
    seed: { type: 'string' },
    'image-size': { type: 'string' },
  },
  async run(values) {
    const data = required(values, 'data');
    const out = required(values, 'out');
    const count = num(values, 'count') ?? 8;
    const seed = num(values, 'seed') ?? 0;
    const taskName = str(values.task);
    if (!taskName) {
      if (data !== 'synthetic') throw new Error('--task is required unless --data synthetic');
      await writeSyntheticGrid(out, count, num(values, 'image-size') ?? 64, seed);
      console.log(`wrote ${out}`);
      return;
    }
    const task = getTask(taskName);
    const pretrained = str(values.checkpoint) ? loadPretrained(str(values.checkpoint)!) : undefined;
    if (pretrained && pretrained.config.task !== task.name)
      throw new Error(`--checkpoint was trained on '${pretrained.config.task}', not '${task.name}'`);
    const imageSize = num(values, 'image-size') ?? pretrained?.config.imageSize ?? (task.defaults.imageSize as number | undefined);
    const store = await resolveDataset(data, { split: pretrained ? 'test' : 'train', size: imageSize });
    const loader = new DataLoader(store, {
      batchSize: count,
      seed,
      normalize: pretrained?.normalization ?? 'dataset',
      outputSize: imageSize,
    });
    const { mean, std } = loader.stats();
    const display = (images: torch.Tensor) =>
      images
        .mul(torch.tensor(std).view([1, -1, 1, 1]))
        .add(torch.tensor(mean).view([1, -1, 1, 1]))
        .clamp(0, 1);
    const iterator = loader.epoch(0);
    const { value: batch } = await iterator.next();
    await iterator.return?.();
    await loader.close();
    const instance =
      pretrained?.instance ??
      task.create(createBackbone(task.defaults.backbone ?? 'nin4', task.inputChannels?.(store.channels) ?? store.channels), task.options.parse({}), {
        inChannels: store.channels,
        imageSize: imageSize ?? store.height,
        store,
      });
    const { picture, accuracy } = torch.noGrad(() =>
      torch.tidy(() => {
        const prepared = instance.prepare(batch, new torch.Generator(seed));
        const answers = pretrained ? instance.answers(prepared) : undefined;
        const right = answers ? ` — ${answerSummary(answers)}` : '';
        return { picture: task.picture(prepared, answers, display), accuracy: right };
      }),
    );
    await writeGrid(out, picture.panels, picture.captions, {
      columns: picture.columns,
      title: `${task.name}: ${task.description}${accuracy}`,
    });
    picture.panels.dispose();
    disposeBatch(batch);
    console.log(`wrote ${out}`);
  },
};

const ingest: Command = {
  summary: 'decode a folder of images or videos into a cached store',
  help: `pretext ingest <folder> --size S --out store.pxs [--video --fps F --max-frames N]`,
  options: {
    size: { type: 'string' },
    out: { type: 'string' },
    video: { type: 'boolean' },
    fps: { type: 'string' },
    'max-frames': { type: 'string' },
    rebuild: { type: 'boolean' },
  },
  async run(values, positionals) {
    const source = positionals[0];
    if (!source) throw new Error('give the folder to ingest: pretext ingest <folder> --size S --out store.pxs');
    const size = num(values, 'size') ?? 64;
    const out = required(values, 'out');
    const rebuild = values.rebuild === true;
    const result = values.video
      ? await ingestVideos({ source, size, out, fps: num(values, 'fps') ?? 5, maxFramesPerClip: num(values, 'max-frames'), rebuild })
      : await ingestImages({ source, size, out, rebuild });
    console.log(JSON.stringify({ out, reused: result.reused, samples: result.store.n, classes: result.store.classNames }));
  },
};

function printResult(label: string, r: EvalResult): void {
  console.log(
    `${label}: top-1 ${r.top1.toFixed(2)}% on ${r.testSamples} test samples (trained on ${r.trainSamples}; ${r.compute.cpuSeconds.toFixed(0)} CPU s)`,
  );
  console.log(`  per class: ${r.perClass.map((c) => `${c.className} ${c.accuracy.toFixed(1)}`).join(', ')}`);
}

const embedCommand: Command = {
  summary: "write a trained backbone's features of a dataset to a safetensors file",
  help: `pretext embed --checkpoint runs/x --data <data> --out feats.safetensors [--layer BLOCK] [--split train|test] [--pool gap|grid2|flatten] [--limit N] [--pictures DIR]

The file holds features (N x D float32), labels (int64, -1 where unknown), and the sample paths
and class names as metadata: the hand-off to 'pretext eval' and to any outside tool.`,
  options: {
    checkpoint: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    layer: { type: 'string' },
    split: { type: 'string' },
    pool: { type: 'string' },
    limit: { type: 'string' },
    pictures: { type: 'string' },
  },
  async run(values) {
    const split = str(values.split) ?? 'test';
    if (split !== 'train' && split !== 'test') throw new Error(`--split must be train or test, got '${split}'`);
    const { path, file } = await embed({
      checkpoint: required(values, 'checkpoint'),
      data: required(values, 'data'),
      out: required(values, 'out'),
      layer: str(values.layer),
      split,
      pool: str(values.pool) as Pool | undefined,
      limit: num(values, 'limit'),
      pictures: str(values.pictures),
    });
    console.log(
      JSON.stringify({ out: path, samples: file.features.shape[0], dims: file.features.shape[1], classes: file.classNames.length }),
    );
  },
};

const evalCommand: Command = {
  summary: 'evaluate features under a protocol: linear, knn, mlp, conv, finetune',
  help: `pretext eval --protocol linear|knn|mlp|conv|finetune
             --train train.safetensors --test test.safetensors
           | --checkpoint runs/x --layer BLOCK|all --train <data> --test <data>
             [--labels-per-class K] [--train-limit N] [--test-limit N] [--seed N] [--json FILE]

--layer all runs the protocol on every block and names the one that transfers best.`,
  options: {
    protocol: { type: 'string' },
    train: { type: 'string' },
    test: { type: 'string' },
    checkpoint: { type: 'string' },
    layer: { type: 'string' },
    pool: { type: 'string' },
    'labels-per-class': { type: 'string' },
    'train-limit': { type: 'string' },
    'test-limit': { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'string' },
  },
  async run(values) {
    const protocol = str(values.protocol) ?? 'linear';
    const allLayers = str(values.layer) === 'all';
    const valid: readonly string[] = allLayers ? FEATURE_PROTOCOLS : PROTOCOLS;
    if (!valid.includes(protocol)) {
      throw new Error(`--protocol ${protocol} is not valid${allLayers ? ' with --layer all' : ''}; valid values: ${valid.join(', ')}`);
    }
    const options = {
      protocol: protocol as Protocol,
      train: required(values, 'train'),
      test: required(values, 'test'),
      checkpoint: str(values.checkpoint),
      layer: str(values.layer),
      pool: str(values.pool) as Pool | undefined,
      labelsPerClass: num(values, 'labels-per-class'),
      trainLimit: num(values, 'train-limit'),
      testLimit: num(values, 'test-limit'),
      seed: num(values, 'seed'),
    };
    let output: unknown;
    if (options.layer === 'all') {
      const { layers, best } = await evaluateAllLayers({ ...options, protocol: protocol as FeatureProtocol, layer: undefined });
      for (const l of layers) printResult(`${options.protocol} on ${l.block}`, l.result);
      console.log(`best block: ${best}`);
      output = { layers, best };
    } else {
      const result = await evaluate(options);
      printResult(`${options.protocol}${options.layer ? ` on ${options.layer}` : ''}`, result);
      output = result;
    }
    if (str(values.json)) writeFileSync(str(values.json)!, JSON.stringify(output, null, 2));
  },
};

const bench: Command = {
  summary: 'reproduce the results table: tasks and baselines under the protocols',
  help: `pretext bench --config bench.yaml --out results/

The config lists rows (a name with run folders or a pretrain config), datasets, protocols,
labels per class, the block and subsets; see bench/ for the configs behind the README table.`,
  options: { config: { type: 'string' }, out: { type: 'string' } },
  async run(values) {
    const config = readBenchConfig(required(values, 'config'));
    const result = await runBench({ ...config, out: str(values.out) ?? config.out });
    console.log(`wrote ${result.files.join(', ')}`);
  },
};

const demo: Command = {
  summary: 'the main job: rotation pretraining on Fashion-MNIST, then a linear probe against random init',
  help: `pretext demo [--out runs/demo] [--epochs N] [--limit N]

Pretrains RotNet on Fashion-MNIST (Debian dataset-fashion-mnist), then fits a linear probe on the
frozen features of the pretrained backbone and of the same backbone at random init, and prints both.`,
  options: { out: { type: 'string' }, epochs: { type: 'string' }, limit: { type: 'string' } },
  async run(values) {
    const out = str(values.out) ?? 'runs/demo';
    const backbone = 'resnet18-small';
    const block = 'layer3';
    const result = await train({
      task: 'rotation',
      data: 'fashion-mnist',
      backbone,
      limit: num(values, 'limit') ?? 20000,
      epochs: num(values, 'epochs') ?? 4,
      batchSize: 128,
      optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
      schedule: { name: 'cosine' },
      out,
    });
    const pretrained = loadPretrained(out);
    const [trainStore, testStore] = [
      await resolveDataset('fashion-mnist', { split: 'train' }),
      await resolveDataset('fashion-mnist', { split: 'test' }),
    ];
    const input = {
      train: trainStore,
      test: testStore,
      block,
      normalization: pretrained.normalization,
      trainIndices: subsetIndices(trainStore.n, 10000, 0),
    };
    console.log(`linear probe on ${block} of ${backbone}, 10000 labeled training images, 10000 test images:`);
    const ours = await evaluateBackbone('linear', { ...input, backbone: pretrained.backbone });
    printResult('  rotation-pretrained', ours);
    const random = await evaluateBackbone('linear', { ...input, backbone: randomBackbone(backbone, trainStore.channels, 0) });
    printResult('  random init        ', random);
    console.log(
      `rotation pretraining: ${(result.cpuSeconds / 60).toFixed(1)} CPU minutes; linear probe ${ours.top1.toFixed(2)}% vs ${random.top1.toFixed(2)}% at random init (${(ours.top1 - random.top1).toFixed(2)} points)`,
    );
  },
};

export const commands: Record<string, Command> = {
  demo,
  pretrain,
  show,
  embed: embedCommand,
  eval: evalCommand,
  bench,
  ingest,
  tasks: listTasks,
  backbones: listBackbones,
};
