// Each CLI command: its options, help and implementation.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { builtinDatasets, resolveDataset } from '../data/datasets.js';
import { ingestImages } from '../data/ingest.js';
import { ingestVideos } from '../data/video.js';
import { writeSyntheticGrid } from '../data/synthetic/index.js';
import { backbones } from '../models/index.js';
import { getTask, tasks } from '../tasks/registry.js';
import { mergeConfig, parseAssignment, parseBudget, readConfigFile } from '../config/schema.js';
import { exportBackbone } from '../train/export.js';
import { loadPretrained } from '../train/pretrained.js';

import { launchWorkers, withoutFlag } from './launch.js';
import { train } from '../train/trainer.js';
import { subsetIndices } from '../util/random.js';
import { examplesImageSize, taskExamples } from '../viz/examples.js';
import { writeGrid } from '../viz/grid.js';
import { clipReport, CLIP_SPLITS, type ClipSplit } from '../eval/clips.js';
import {
  embed,
  evaluate,
  evaluateAllLayers,
  evaluateBackbone,
  randomBackbone,
  FEATURE_PROTOCOLS,
  PROTOCOLS,
  type EvalResult,
  type FeatureProtocol,
  type Pool,
  type Protocol,
} from '../eval/index.js';
import { readBenchConfig, runBench } from '../orchestration/bench.js';
import { accuracyCurve } from '../orchestration/curve.js';

type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  summary: string;
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Values, positionals: string[]): Promise<number | void>;
}

const str = (v: Values[string]) => (typeof v === 'string' ? v : undefined);
/** Progress and warnings go to stderr, so that stdout holds only the result. */
const logLine = (line: string) => console.error(line);

function num(values: Values, name: string): number | undefined {
  const v = str(values[name]);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got '${v}'`);
  return n;
}

/** A flag that must be a whole number of at least 1, when given. */
function wholeNumber(values: Values, name: string): number | undefined {
  const n = num(values, name);
  if (n !== undefined && !(Number.isInteger(n) && n >= 1))
    throw new Error(`--${name} must be a whole number of at least 1, got '${str(values[name])}'`);
  return n;
}

/** A comma-separated list of positive minutes, when given. */
function minutesList(values: Values, name: string): number[] | undefined {
  const v = str(values[name]);
  if (v === undefined) return undefined;
  const minutes = v.split(',').map(Number);
  if (!minutes.every((m) => Number.isFinite(m) && m > 0))
    throw new Error(`--${name} must be positive CPU minutes separated by commas, got '${v}'`);
  return minutes;
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
  // `--resume --out DIR` alone continues DIR's run: its saved config is the base the flags override.
  const saved = values.resume && str(values.out) ? join(str(values.out)!, 'config.json') : undefined;
  const base = saved && existsSync(saved) ? readConfigFile(saved) : {};
  const file = mergeConfig(base, str(values.config) ? readConfigFile(str(values.config)!) : {});
  const flags: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(pretrainFlags)) if (str(values[flag])) flags[key] = str(values[flag]);
  for (const [flag, key] of Object.entries(numericFlags)) {
    const n = num(values, flag);
    if (n !== undefined) flags[key] = n;
  }
  if (values.deterministic) flags.deterministic = true;
  if (values['sync-bn']) flags.syncBatchNorm = true;
  if (str(values.budget)) flags.budget = parseBudget(str(values.budget)!);
  if (str(values.precision)) flags.precision = str(values.precision);
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
  --budget B           stop at B of compute: 30cpu-min (CPU time, all threads) or 15min (wall clock);
                       the schedule is laid out over the steps B buys (measured at the start)
  --precision P        auto (default): bf16 where the CPU has native bfloat16 (AVX512-BF16, AMX), else fp32;
                       bf16: forward passes under CPU autocast to bfloat16; fp32
  --nproc N            data-parallel over N local worker processes (gloo); under torchrun, workers read
                       RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT
  --sync-bn            with several ranks, BatchNorm statistics over all of their batches (SyncBatchNorm)
  --resume             continue from the latest checkpoint in --out (its saved config is the base)
  --deterministic      bit-exact resumption (fixed threads, RNG and loader state saved)
  --threads N  --checkpoint-every STEPS  --keep-last K  --log-every STEPS  --grad-clip NORM${Object.values(tasks)
    .flatMap((t) =>
      Object.entries(t.data?.sources ?? {}).map(
        ([name, s]) => `\n  --${name} DATA${' '.repeat(Math.max(1, 14 - name.length))}${t.name}: ${s.description}`,
      ),
    )
    .join('')}`,
  options: {
    config: { type: 'string' },
    ...Object.fromEntries(sourceFlags().map((name) => [name, { type: 'string' as const }])),
    ...Object.fromEntries(Object.keys({ ...pretrainFlags, ...numericFlags, lr: 1 }).map((k) => [k, { type: 'string' as const }])),
    set: { type: 'string', multiple: true },
    budget: { type: 'string' },
    precision: { type: 'string' },
    nproc: { type: 'string' },
    resume: { type: 'boolean' },
    deterministic: { type: 'boolean' },
    'sync-bn': { type: 'boolean' },
  },
  async run(values) {
    const nproc = wholeNumber(values, 'nproc');
    if (nproc && nproc > 1 && process.env.WORLD_SIZE === undefined) {
      const args = withoutFlag(process.argv.slice(2), 'nproc');
      return launchWorkers({ script: process.argv[1], args, nproc, log: logLine });
    }
    const result = await train(configFromArgs(values), { resume: values.resume === true });
    const last = result.history.at(-1);
    console.log(
      JSON.stringify({
        runDir: result.runDir,
        steps: result.steps,
        interrupted: result.interrupted,
        stopped: result.stopped,
        imagesSeen: result.imagesSeen,
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
    const checkpoint = str(values.checkpoint);
    const run = checkpoint ? loadPretrained(checkpoint) : undefined;
    const imageSize = num(values, 'image-size') ?? examplesImageSize(task, run);
    const store = await resolveDataset(data, { split: run ? 'test' : 'train', size: imageSize });
    // Rebuilt with the store, for tasks that read it (the synthetic task's geometry).
    const pretrained = checkpoint ? loadPretrained(checkpoint, { store }) : undefined;
    const { picture, summary } = await taskExamples({ task, store, pretrained, count, seed, imageSize });
    await writeGrid(out, picture.panels, picture.captions, {
      columns: picture.columns,
      title: `${task.name}: ${task.description}${summary ? ` — ${summary}` : ''}`,
    });
    picture.panels.dispose();
    console.log(`wrote ${out}`);
  },
};

const ingest: Command = {
  summary: 'decode a folder of images or videos into a cached store',
  help: `pretext ingest <folder> --out store.pxs [--size S] [--rebuild] [--video --fps F --max-frames N]

  --size S         every image or frame becomes S x S (images: default their own size when they
                   all share one up to 128 px, else 64; videos: default 64)
  --out FILE       the store to write; an existing store is replaced, any other file is refused
  --rebuild        decode again even when the store at --out matches the folder
  --video          the folder holds video clips (decoded with ffmpeg)
  --fps F          frames sampled per second of video (default 5)
  --max-frames N   keep at most N frames of each clip, from its start (default: every frame)`,
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
    if (!source) throw new Error('give the folder to ingest: pretext ingest <folder> --out store.pxs');
    const size = wholeNumber(values, 'size');
    const out = required(values, 'out');
    const rebuild = values.rebuild === true;
    const result = values.video
      ? await ingestVideos({
          source,
          size: size ?? 64,
          out,
          fps: num(values, 'fps') ?? 5,
          maxFramesPerClip: wholeNumber(values, 'max-frames'),
          rebuild,
        })
      : await ingestImages({ source, size, out, rebuild });
    const { n, height, width, classNames } = result.store;
    console.log(JSON.stringify({ out, reused: result.reused, samples: n, size: [height, width], classes: classNames }));
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
  help: `pretext embed --checkpoint runs/x --data <data> --out feats.safetensors [--split train|test] [--module NAME] [--layer BLOCK] [--pool gap|grid2|flatten] [--limit N] [--pictures DIR]

  --split train|test   which split to embed (default train). A folder's test split is its test/
                       (else val/) subfolder; a folder without train/ and test/ or val/ has one split.
  --module NAME        the run's network to read (default backbone; superres and inpainting also
                       offer discriminator), fed what it sees of the images in pretraining

The file holds features (N x D float32), labels (int64, -1 where unknown), and the sample paths,
class names, split and how the features were made as metadata: the hand-off to 'pretext eval'
(embed train and test separately) and to any outside tool.`,
  options: {
    checkpoint: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    module: { type: 'string' },
    layer: { type: 'string' },
    split: { type: 'string' },
    pool: { type: 'string' },
    limit: { type: 'string' },
    pictures: { type: 'string' },
  },
  async run(values) {
    const split = str(values.split) ?? 'train';
    if (split !== 'train' && split !== 'test') throw new Error(`--split must be train or test, got '${split}'`);
    const { path, file, store } = await embed({
      checkpoint: required(values, 'checkpoint'),
      data: required(values, 'data'),
      out: required(values, 'out'),
      module: str(values.module),
      layer: str(values.layer),
      split,
      pool: str(values.pool) as Pool | undefined,
      limit: num(values, 'limit'),
      pictures: str(values.pictures),
      log: logLine,
    });
    const [samples, dims] = file.features.shape;
    console.log(JSON.stringify({ out: path, split, source: store.origin, samples, dims, classes: file.classNames.length }));
  },
};

/** The data, block and subset flags that eval and curve share. */
function probeFlags(values: Values) {
  return {
    train: required(values, 'train'),
    test: required(values, 'test'),
    layer: str(values.layer),
    pool: str(values.pool) as Pool | undefined,
    labelsPerClass: num(values, 'labels-per-class'),
    trainLimit: num(values, 'train-limit'),
    testLimit: num(values, 'test-limit'),
    seed: num(values, 'seed'),
  };
}

const evalCommand: Command = {
  summary: 'evaluate features under a protocol: linear, knn, mlp, conv, finetune',
  help: `pretext eval --protocol linear|knn|mlp|conv|finetune
             --train train.safetensors --test test.safetensors [--allow-mismatch]
           | --checkpoint runs/x [--module NAME] [--init random] --layer BLOCK|all --train <data> --test <data>
           | --backbone NAME --init random --layer BLOCK|all --train <data> --test <data> [--image-size S]
             [--labels-per-class K] [--train-limit N] [--test-limit N] [--seed N] [--json FILE]

Features files must come from the same checkpoint, block, pooling and preprocessing (--allow-mismatch
evaluates them anyway, with a warning), and no test sample may be a training sample. With data
specs, --train reads the train split and --test the evaluation split (a folder's test/ or val/).
--init random evaluates the backbone at random init (seeded by --seed): with --checkpoint, its
architecture and preprocessing; with --backbone NAME, that backbone on the data's own statistics.
--module NAME reads another network of the run than its backbone (superres and inpainting:
discriminator), fed what it sees of the images in pretraining; with --init random, that module at
random init, fed the same. --layer all runs the protocol on every block and names the one that
transfers best.`,
  options: {
    protocol: { type: 'string' },
    train: { type: 'string' },
    test: { type: 'string' },
    checkpoint: { type: 'string' },
    module: { type: 'string' },
    layer: { type: 'string' },
    pool: { type: 'string' },
    'labels-per-class': { type: 'string' },
    'train-limit': { type: 'string' },
    'test-limit': { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'string' },
    'allow-mismatch': { type: 'boolean' },
    backbone: { type: 'string' },
    init: { type: 'string' },
    'image-size': { type: 'string' },
  },
  async run(values) {
    const protocol = str(values.protocol) ?? 'linear';
    const init = str(values.init);
    if (init !== undefined && init !== 'random' && init !== 'checkpoint')
      throw new Error(`--init must be random or checkpoint, got '${init}'`);
    const allLayers = str(values.layer) === 'all';
    const valid: readonly string[] = allLayers ? FEATURE_PROTOCOLS : PROTOCOLS;
    if (!valid.includes(protocol)) {
      throw new Error(`--protocol ${protocol} is not valid${allLayers ? ' with --layer all' : ''}; valid values: ${valid.join(', ')}`);
    }
    const options = {
      protocol: protocol as Protocol,
      ...probeFlags(values),
      checkpoint: str(values.checkpoint),
      module: str(values.module),
      allowMismatch: values['allow-mismatch'] === true,
      init: init as 'random' | 'checkpoint' | undefined,
      backbone: str(values.backbone),
      imageSize: wholeNumber(values, 'image-size'),
      log: logLine,
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

const exportCommand: Command = {
  summary: "write a run's backbone alone as safetensors that a PyTorch module loads as it is",
  help: `pretext export --checkpoint runs/x --out backbone.safetensors

Writes the backbone's parameters and buffers (no head, optimizer or RNG state) under the names of
a PyTorch module of the same layout, which loads them with load_state_dict(strict=True); convolution
weights are in NCHW order. The metadata holds backbone, inChannels, imageSize, mean, std and blocks.
examples/load_in_pytorch.py defines the NIN and CIFAR ResNet modules and checks the features.`,
  options: { checkpoint: { type: 'string' }, out: { type: 'string' } },
  async run(values) {
    const out = required(values, 'out');
    const { tensors, metadata } = exportBackbone(required(values, 'checkpoint'), out);
    console.log(JSON.stringify({ out, backbone: metadata.backbone, tensors, checkpoint: metadata.checkpoint }));
  },
};

const bench: Command = {
  summary: 'reproduce the results table: tasks and baselines under the protocols',
  help: `pretext bench --config bench.yaml --out results/ [--resume]

The config lists rows (a name with run folders or a pretrain config), datasets, protocols,
labels per class, the block and subsets; see bench/ for the configs behind the README table.
results.md and results.json are rewritten after every row; --resume keeps the rows they hold
(same settings) and evaluates only the rest.`,
  options: { config: { type: 'string' }, out: { type: 'string' }, resume: { type: 'boolean' } },
  async run(values) {
    const config = readBenchConfig(required(values, 'config'));
    const result = await runBench({ ...config, out: str(values.out) ?? config.out, resume: values.resume === true, log: logLine });
    console.log(`wrote ${result.files.join(', ')}`);
  },
};

const curve: Command = {
  summary: 'accuracy against pretraining CPU minutes: a probe on every kept checkpoint of runs',
  help: `pretext curve --checkpoint runs/a [--checkpoint runs/b ...] --train <data> --test <data> --out DIR
             [--protocol linear|knn] [--layer BLOCK] [--pool gap|grid2] [--random]
             [--labels-per-class K] [--train-limit N] [--test-limit N] [--seed N] [--supervised M,M...]

Probes each checkpoint a run kept (train with --keep-last and --checkpoint-every to keep several)
and draws top-1 against the CPU minutes of pretraining behind it (DIR/curve.svg, DIR/curve.json);
--random adds the first run's network at random init as the 0-minute point and a flat line;
--supervised 1,2,5 adds that network trained end to end from random init on the probe's labeled
samples for 1, 2 and 5 CPU minutes each, scored on the same test samples.`,
  options: {
    checkpoint: { type: 'string', multiple: true },
    ...Object.fromEntries(
      ['train', 'test', 'out', 'protocol', 'layer', 'pool', 'labels-per-class', 'train-limit', 'test-limit', 'seed', 'supervised'].map(
        (k) => [k, { type: 'string' as const }],
      ),
    ),
    random: { type: 'boolean' },
  },
  async run(values) {
    const protocol = str(values.protocol) ?? 'linear';
    if (!(FEATURE_PROTOCOLS as readonly string[]).includes(protocol))
      throw new Error(`--protocol ${protocol}: valid values ${FEATURE_PROTOCOLS.join(', ')}`);
    const result = await accuracyCurve({
      runs: (values.checkpoint as string[] | undefined) ?? [],
      out: required(values, 'out'),
      protocol: protocol as FeatureProtocol,
      ...probeFlags(values),
      random: values.random === true,
      supervised: minutesList(values, 'supervised'),
      log: logLine,
    });
    console.log(`wrote ${result.files.svg}, ${result.files.json}`);
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

const clipsCommand: Command = {
  summary: 'action classification on a video frame store, leaving one person out, against random init',
  help: `pretext clips --checkpoint runs/x --data store.pxs [--split person|halves] [--layer BLOCK|all] [--pool gap|grid2] [--seed N] [--json FILE]

Linear and kNN probes on the run's frame features and on summaries of each clip (their mean, their
change from the clip's first frame, their spread over time), and the same for the backbone at random
init. --split person (default) holds out one recorded person at a time (clips named like
PS7A1P2T3.avi); --split halves trains on one half of each clip and tests on the other (one clip per
class). A frame-order run also reports its verification accuracy.`,
  options: {
    checkpoint: { type: 'string' },
    data: { type: 'string' },
    split: { type: 'string' },
    layer: { type: 'string' },
    pool: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'string' },
  },
  async run(values) {
    const split = str(values.split) ?? 'person';
    if (!CLIP_SPLITS.includes(split as ClipSplit)) throw new Error(`--split must be one of ${CLIP_SPLITS.join(', ')}, got '${split}'`);
    const report = await clipReport({
      checkpoint: required(values, 'checkpoint'),
      data: required(values, 'data'),
      split: split as ClipSplit,
      layer: str(values.layer),
      pool: str(values.pool) as Pool | undefined,
      seed: num(values, 'seed'),
      log: console.log,
    });
    if (str(values.json)) writeFileSync(str(values.json)!, JSON.stringify(report, null, 2));
  },
};

const studio: Command = {
  summary: 'serve Pretext Studio: tasks on your data, live runs, answers, embeddings, results',
  help: `pretext studio [--runs runs/] [--data <folder|store|${Object.keys(builtinDatasets).join('|')}>] [--port 7860] [--host 127.0.0.1] [--cache DIR]

Serves a local web app (packages/studio) and prints its URL, which carries a token made at launch.`,
  options: {
    runs: { type: 'string' },
    data: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    cache: { type: 'string' },
  },
  async run(values) {
    // The studio depends on this package, not the reverse: it is loaded by name when installed.
    const name = '@pretext/studio/main';
    const loaded = await import(name).catch(() => undefined);
    if (!loaded)
      throw new Error('Pretext Studio is not installed or not built: it is packages/studio of the repository (npm ci && npm run build)');
    const args = Object.entries(values).flatMap(([k, v]) => (typeof v === 'string' ? [`--${k}`, v] : []));
    return (loaded as { main(argv: string[]): Promise<number> }).main(args);
  },
};

export const commands: Record<string, Command> = {
  demo,
  pretrain,
  show,
  embed: embedCommand,
  eval: evalCommand,
  clips: clipsCommand,
  bench,
  curve,
  export: exportCommand,
  ingest,
  studio,
  tasks: listTasks,
  backbones: listBackbones,
};
