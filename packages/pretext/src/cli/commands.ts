// Each CLI command: its options, help and implementation.
import type { ParseArgsConfig } from 'node:util';
import * as torch from '@pretext/torch';
import { builtinDatasets, resolveDataset } from '../data/datasets.js';
import { DataLoader, disposeBatch } from '../data/loader.js';
import { ingestImages } from '../data/ingest.js';
import { ingestVideos } from '../data/video.js';
import { writeSyntheticGrid } from '../data/synthetic/index.js';
import { backbones, createBackbone } from '../models/index.js';
import { getTask, tasks } from '../tasks/registry.js';
import { mergeConfig, parseAssignment, readConfigFile } from '../train/config.js';
import { loadPretrained } from '../train/pretrained.js';
import { train } from '../train/trainer.js';
import { writeGrid } from '../viz/grid.js';

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
  --threads N  --checkpoint-every STEPS  --keep-last K  --log-every STEPS  --grad-clip NORM`,
  options: {
    config: { type: 'string' },
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
      task.create(createBackbone(task.defaults.backbone ?? 'nin4', store.channels), task.options.parse({}), {
        inChannels: store.channels,
        imageSize: imageSize ?? store.height,
      });
    const { picture, accuracy } = torch.noGrad(() =>
      torch.tidy(() => {
        const prepared = instance.prepare(batch, new torch.Generator(seed));
        const answers = pretrained ? instance.answers(prepared) : undefined;
        const right = answers ? ` — ${answers.filter((a) => a.correct).length}/${answers.length} right` : '';
        return { picture: task.picture(prepared, answers, display), accuracy: right };
      }),
    );
    await writeGrid(out, picture.panels, picture.captions, { columns: picture.columns, title: `${task.name}: ${task.description}${accuracy}` });
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

export const commands: Record<string, Command> = {
  pretrain,
  show,
  ingest,
  tasks: listTasks,
  backbones: listBackbones,
};
