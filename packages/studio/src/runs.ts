// Runs in the runs folder: each subfolder with a config.json is a run. metrics.jsonl is parsed
// leniently (a run killed mid-write leaves a broken last line, which is skipped) and followed for
// the live curves; a run's status is read from what it wrote and when. An `end` record (how the
// run stopped, its CPU time) settles the status where the trainer writes one.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isDirectory, resolveInside } from './paths.js';

/** One line of metrics.jsonl: a logged step, a finished epoch, or the end of a training process. */
export interface MetricRecord {
  type: 'step' | 'epoch' | 'end';
  time?: string;
  epoch: number;
  step?: number;
  steps?: number;
  lr?: number;
  imagesPerSecond?: number;
  seconds?: number;
  partial?: boolean;
  /** End records: why the process stopped ('epochs', 'budget', 'signal') and the CPU time it used. */
  stopped?: string;
  cpuSeconds?: number;
  /** Epoch records keep their metrics here; step records carry them at the top level. */
  metrics?: Record<string, number>;
  [key: string]: unknown;
}

export type RunStatus = 'running' | 'finished' | 'interrupted';

export interface RunSummary {
  name: string;
  task: string;
  backbone: string;
  data: string;
  status: RunStatus;
  /**
   * The last epoch logged (a budget may stop one part-way: `partial`) and the epochs configured;
   * a budget lays the schedule out over the steps it buys, so its runs have no planned count.
   */
  epochs: { done: number; planned?: number; partial: boolean; budget?: string };
  steps: number;
  /** Training time summed over epochs (the trainer's wall clock per epoch). */
  trainSeconds: number;
  /** CPU time of the run's training processes, where they recorded it (end records). */
  cpuSeconds?: number;
  lastMetrics: Record<string, number>;
  updatedAt: string;
  checkpoints: string[];
  imageSize?: number;
  channels?: number;
}

export interface RunDetail extends RunSummary {
  config: Record<string, unknown>;
  dataInfo?: Record<string, unknown>;
  skippedLines: number;
}

const readJson = (path: string): Record<string, unknown> | undefined => {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
};

const isRecord = (value: unknown): value is MetricRecord =>
  typeof value === 'object' && value !== null && ['step', 'epoch', 'end'].includes((value as MetricRecord).type);

/** Parses complete metrics lines; malformed ones (a write cut short, stray text) are counted and skipped. */
export function parseMetricLines(lines: string[]): { records: MetricRecord[]; skipped: number } {
  const records: MetricRecord[] = [];
  let skipped = 0;
  for (const line of lines) {
    if (!line.trim()) continue;
    try {
      const value = JSON.parse(line) as unknown;
      if (isRecord(value)) records.push(value);
      else skipped++;
    } catch {
      skipped++;
    }
  }
  return { records, skipped };
}

export function readMetrics(runDir: string): { records: MetricRecord[]; skipped: number } {
  const path = join(runDir, 'metrics.jsonl');
  if (!existsSync(path)) return { records: [], skipped: 0 };
  return parseMetricLines(readFileSync(path, 'utf8').split('\n'));
}

/** Checkpoint names (best, ckpt-000000040, ...) whose sidecar is in place. */
export function listCheckpoints(runDir: string): string[] {
  const dir = join(runDir, 'checkpoints');
  if (!isDirectory(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && existsSync(join(dir, f.replace(/\.json$/, '.safetensors'))))
    .map((f) => f.replace(/\.json$/, ''))
    .sort((a, b) => (a === 'best' ? -1 : b === 'best' ? 1 : b.localeCompare(a)));
}

const lastWrite = (runDir: string): number =>
  Math.max(
    ...[join(runDir, 'metrics.jsonl'), join(runDir, 'checkpoints'), join(runDir, 'config.json')].map(
      (p) => statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? 0,
    ),
  );

/**
 * Finished when its epochs are done (or a budget ended it); running while it keeps writing (within
 * a minute, or three of its own logging intervals when they are longer); interrupted otherwise.
 */
export function runStatus(config: Record<string, unknown>, records: MetricRecord[], updatedMs: number, now = Date.now()): RunStatus {
  const final = records.at(-1);
  if (final?.type === 'end') return final.stopped === 'signal' ? 'interrupted' : 'finished';
  const epochs = records.filter((r) => r.type === 'epoch');
  const last = epochs.at(-1);
  if (last && (last.partial || last.epoch >= Number(config.epochs))) return 'finished';
  const times = records
    .slice(-4)
    .map((r) => Date.parse(r.time ?? ''))
    .filter(Number.isFinite);
  const interval = times.length > 1 ? (times.at(-1)! - times[0]) / (times.length - 1) : 0;
  return now - updatedMs < Math.max(60_000, 3 * interval) ? 'running' : 'interrupted';
}

/** `30cpu-min` or `15min`, as the flag says it. */
const budgetText = (budget: Record<string, number>): string =>
  budget.cpuMinutes !== undefined ? `${budget.cpuMinutes}cpu-min` : `${budget.wallMinutes}min`;

const numbers = (record: Record<string, unknown>): Record<string, number> =>
  Object.fromEntries(Object.entries(record).filter(([, v]) => typeof v === 'number' && Number.isFinite(v))) as Record<string, number>;

export function readRun(runsDir: string, name: string): RunDetail {
  const dir = resolveInside(runsDir, name);
  const config = readJson(join(dir, 'config.json'));
  if (!config) throw new Error(`run '${name}' has no readable config.json`);
  const dataInfo = readJson(join(dir, 'data.json'));
  const { records, skipped } = readMetrics(dir);
  const epochs = records.filter((r) => r.type === 'epoch');
  const lastEpoch = epochs.at(-1);
  const lastStep = records.filter((r) => r.type === 'step').at(-1);
  const updated = lastWrite(dir);
  const ends = records.filter((r) => r.type === 'end' && typeof r.cpuSeconds === 'number');
  return {
    name,
    task: String(config.task ?? '?'),
    backbone: String(config.backbone ?? '?'),
    data: String(config.data ?? '?'),
    status: runStatus(config, records, updated),
    epochs: {
      done: lastEpoch?.epoch ?? 0,
      planned: config.budget ? undefined : Number(config.epochs ?? 0),
      partial: lastEpoch?.partial === true,
      budget: config.budget ? budgetText(config.budget as Record<string, number>) : undefined,
    },
    steps: Math.max(lastEpoch?.steps ?? 0, lastStep?.step ?? 0),
    trainSeconds: epochs.reduce((t, r) => t + (r.seconds ?? 0), 0),
    cpuSeconds: ends.length ? ends.reduce((t, r) => t + r.cpuSeconds!, 0) : undefined,
    lastMetrics: lastEpoch?.metrics ? numbers(lastEpoch.metrics) : lastStep ? numbers(lastStep) : {},
    updatedAt: new Date(updated).toISOString(),
    checkpoints: listCheckpoints(dir),
    imageSize: dataInfo?.imageSize as number | undefined,
    channels: dataInfo?.channels as number | undefined,
    config,
    dataInfo,
    skippedLines: skipped,
  };
}

/** Every run of the runs folder, most recently updated first; folders without a config.json are left out. */
export function listRuns(runsDir: string): RunSummary[] {
  if (!isDirectory(runsDir)) return [];
  const runs: RunSummary[] = [];
  for (const name of readdirSync(runsDir)) {
    if (name.startsWith('.') || !existsSync(join(runsDir, name, 'config.json'))) continue;
    try {
      const { config: _config, dataInfo: _data, skippedLines: _skipped, ...summary } = readRun(runsDir, name);
      runs.push(summary);
    } catch {
      // a run folder that escapes the runs folder or cannot be read is not listed
    }
  }
  return runs.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
}

/**
 * Follows metrics.jsonl from a byte offset: complete new lines become records; a line still being
 * written waits for its newline. A file that shrank (the run restarted) starts over.
 */
export class MetricsFollower {
  private offset = 0;
  private pending = '';

  constructor(private readonly path: string) {}

  /** New records since the last call; `reset` when the file was replaced. */
  poll(): { records: MetricRecord[]; skipped: number; reset: boolean } {
    const size = statSync(this.path, { throwIfNoEntry: false })?.size ?? 0;
    let reset = false;
    if (size < this.offset) {
      [this.offset, this.pending, reset] = [0, '', true];
    }
    if (size === this.offset) return { records: [], skipped: 0, reset };
    const fd = openSync(this.path, 'r');
    const bytes = Buffer.alloc(size - this.offset);
    try {
      readSync(fd, bytes, 0, bytes.length, this.offset);
    } finally {
      closeSync(fd);
    }
    this.offset = size;
    const lines = (this.pending + bytes.toString('utf8')).split('\n');
    this.pending = lines.pop() ?? '';
    return { ...parseMetricLines(lines), reset };
  }
}
