// Training configuration: defaults < task defaults < config file (JSON or YAML) < CLI flags,
// validated by one schema whose errors name the field, the value and what is allowed. It sits below
// tasks and the trainer: tasks declare defaults in its terms, the trainer reads it.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { PRECISIONS } from '../util/precision.js';

const lr = z.number().positive();
const weightDecay = z.number().min(0).default(0);

export const optimizerSchema = z.discriminatedUnion('name', [
  z
    .object({
      name: z.literal('sgd'),
      lr,
      momentum: z.number().min(0).max(1).default(0.9),
      nesterov: z.boolean().default(false),
      weightDecay,
    })
    .strict(),
  z
    .object({
      name: z.literal('adam'),
      lr,
      betas: z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]).default([0.9, 0.999]),
      weightDecay,
    })
    .strict(),
  z
    .object({
      name: z.literal('adamw'),
      lr,
      betas: z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]).default([0.9, 0.999]),
      weightDecay,
    })
    .strict(),
]);

export const scheduleSchema = z.discriminatedUnion('name', [
  z.object({ name: z.literal('constant') }).strict(),
  /** Multiply the rate by gamma at each milestone epoch. */
  z
    .object({
      name: z.literal('multistep'),
      milestones: z.array(z.number().int().nonnegative()),
      gamma: z.number().positive().default(0.1),
    })
    .strict(),
  /** Linear warmup then cosine decay to minLrRatio x lr, per step. */
  z
    .object({ name: z.literal('cosine'), warmupEpochs: z.number().min(0).default(0), minLrRatio: z.number().min(0).max(1).default(0) })
    .strict(),
]);

export type OptimizerConfig = z.input<typeof optimizerSchema>;
export type ScheduleConfig = z.input<typeof scheduleSchema>;

const OPTIMIZER_KEYS = new Set(['name', 'lr', 'momentum', 'nesterov', 'weightDecay', 'betas']);
const SCHEDULE_KEYS = new Set(['name', 'milestones', 'gamma', 'warmupEpochs', 'minLrRatio']);

/**
 * One setting for every optimizer phase, or one per phase name (`optimizer.discriminator.lr`).
 * Keys of the single form beside phase entries (a `--lr` flag on a GAN task) apply to every phase.
 */
function perPhase<S extends z.ZodTypeAny>(schema: S, ownKeys: Set<string>) {
  return z.unknown().transform((value, ctx): z.output<S> | Record<string, z.output<S>> => {
    const entries = isPlain(value) ? Object.entries(value) : [];
    const shared = Object.fromEntries(entries.filter(([k]) => ownKeys.has(k)));
    const phases = entries.filter(([k]) => !ownKeys.has(k));
    const single = !phases.length || !isPlain(value);
    const check = (v: unknown, path: string[]) => {
      const result = schema.safeParse(v, { reportInput: true });
      if (!result.success) for (const issue of result.error.issues) ctx.issues.push({ ...issue, path: [...path, ...issue.path] } as never);
      return result.data as z.output<S>;
    };
    if (single) return check(value, []);
    return Object.fromEntries(phases.map(([k, v]) => [k, check(isPlain(v) ? mergeConfig(v, shared) : v, [k])]));
  });
}

/** A compute budget: `30cpu-min`, `15min`, or the object form. */
export const budgetSchema = z.preprocess(
  (v) => (typeof v === 'string' ? parseBudget(v) : v),
  z
    .object({
      cpuMinutes: z.number().positive().optional(),
      wallMinutes: z.number().positive().optional(),
      calibrationSteps: z.number().int().min(2).default(10),
    })
    .strict()
    .refine((b) => (b.cpuMinutes === undefined) !== (b.wallMinutes === undefined), 'give exactly one of cpuMinutes and wallMinutes'),
);

export const trainConfigSchema = z
  .object({
    task: z.string().min(1),
    taskOptions: z.record(z.string(), z.unknown()).default({}),
    /** A folder, a store file, `cifar10`, `fashion-mnist` or `synthetic`. */
    data: z.string().min(1),
    /** Use only this many samples (a seeded random subset). */
    limit: z.number().int().positive().optional(),
    /** Resize inputs to this size first (patch tasks want more pixels than CIFAR's 32). */
    imageSize: z.number().int().min(8).optional(),
    augment: z.record(z.string(), z.unknown()).optional(),
    backbone: z.string().min(1),
    epochs: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    /** Caps the batches per epoch, for quick runs. */
    stepsPerEpoch: z.number().int().positive().optional(),
    /** Further data sources a task declares, by name (`--real cifar10` sets `sources.real`). */
    sources: z.record(z.string(), z.string().min(1)).default({}),
    optimizer: perPhase(optimizerSchema, OPTIMIZER_KEYS),
    schedule: perPhase(scheduleSchema, SCHEDULE_KEYS).default({ name: 'constant' }),
    /**
     * Stop at this much CPU time (all threads of the process) or wall-clock time, with the schedule
     * laid out over the steps it buys, measured over `calibrationSteps` steps at the start.
     */
    budget: budgetSchema.optional(),
    /** Stop when a loss is not finite, or exceeds `factor` times its running mean after `afterSteps` steps. */
    divergence: z
      .object({ factor: z.number().gt(1).default(100), afterSteps: z.number().int().nonnegative().default(50) })
      .strict()
      .default({ factor: 100, afterSteps: 50 }),
    gradClip: z.number().positive().optional(),
    seed: z.number().int().nonnegative().default(0),
    /**
     * 'bf16' runs each phase's forward and loss under CPU autocast to bfloat16 (fast on AVX512-BF16
     * and AMX CPUs); 'auto' (default) is bf16 on such a CPU and fp32 elsewhere, decided when the
     * config is resolved, so a run's saved config holds what it used.
     */
    precision: z.enum(PRECISIONS).default('auto'),
    /** Before the first step, estimate a step's peak memory from dry steps and refuse a run that would not fit. */
    memoryCheck: z.boolean().default(true),
    /** Bit-exact resumption: fixes the thread count and restores every RNG and loader position. */
    deterministic: z.boolean().default(false),
    threads: z.number().int().positive().optional(),
    /**
     * Data-parallel runs normalize with BatchNorm statistics over every rank's batch (SyncBatchNorm),
     * as one process on the whole batch would. Absent means false (and keeps older runs resumable).
     */
    syncBatchNorm: z.boolean().optional(),
    out: z.string().min(1),
    checkpointEverySteps: z.number().int().positive().default(500),
    keepLast: z.number().int().positive().default(3),
    logEverySteps: z.number().int().positive().default(20),
  })
  .strict();

/** Parses `30cpu-min` (CPU time of the whole process, all threads) or `15min` (wall clock). */
export function parseBudget(text: string): { cpuMinutes?: number; wallMinutes?: number } {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(cpu-?min|min)\s*$/i.exec(text);
  if (!match || !(Number(match[1]) > 0)) {
    throw new ConfigError(`budget '${text}': expected a positive number of minutes, e.g. 30cpu-min (CPU time) or 15min (wall clock)`);
  }
  const minutes = Number(match[1]);
  return /cpu/i.test(match[2]) ? { cpuMinutes: minutes } : { wallMinutes: minutes };
}

export type TrainConfig = z.infer<typeof trainConfigSchema>;
/** Every field of a training config, as tasks state their defaults. */
export type TrainSettings = TrainConfigInput;
export type TrainConfigInput = z.input<typeof trainConfigSchema>;

export class ConfigError extends Error {}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Validates with `schema`; the error lists each bad field with its value and what is allowed. */
export function validate<S extends z.ZodTypeAny>(schema: S, value: unknown, what = 'config'): z.infer<S> {
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const field = issue.path.join('.') || '(root)';
    if (issue.code === 'unrecognized_keys') {
      return `${what} field '${field}' has unknown key(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    }
    if (issue.code === 'invalid_union' && 'discriminator' in issue) {
      const chosen = (issue.input as Record<string, unknown> | undefined)?.[issue.discriminator as string];
      return `${what} field '${field}' = ${describe(chosen)}: ${issue.message}`;
    }
    const got = 'input' in issue && issue.input !== undefined ? ` = ${describe(issue.input)}` : ' is missing';
    return `${what} field '${field}'${got}: ${issue.message}`;
  });
  throw new ConfigError(lines.join('\n'));
}

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Deep-merges config layers. An object whose `name` changes (another optimizer or schedule)
 * replaces the earlier one instead of merging into it.
 */
export function mergeConfig(...layers: Plain[]): Plain {
  const out: Plain = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      const prev = out[key];
      const replaces = isPlain(value) && isPlain(prev) && 'name' in value && value.name !== prev.name;
      out[key] = isPlain(value) && isPlain(prev) && !replaces ? mergeConfig(prev, value) : value;
    }
  }
  return out;
}

/**
 * Reads a JSON or YAML config file. A file may extend another with `base: other.yaml` (relative to
 * itself): the base is read first and the file's own fields merged over it (lists replace).
 */
export function readConfigFile(path: string, seen: string[] = []): Plain {
  const real = resolve(path);
  if (seen.includes(real)) throw new ConfigError(`config file ${path} is its own base (${[...seen, real].join(' -> ')})`);
  const own = readOneConfigFile(path);
  if (own.base === undefined) return own;
  if (typeof own.base !== 'string')
    throw new ConfigError(`config file ${path} field 'base' must be a file path, got ${describe(own.base)}`);
  const { base, ...rest } = own;
  return mergeConfig(readConfigFile(resolve(dirname(real), base), [...seen, real]), rest);
}

function readOneConfigFile(path: string): Plain {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} does not parse: ${(e as Error).message}`);
  }
  if (!isPlain(parsed)) throw new ConfigError(`config file ${path} must hold an object at the top level`);
  return parsed;
}

/** Turns `a.b.c=value` into a nested object; the value is parsed as JSON when it can be. */
export function parseAssignment(assignment: string): Plain {
  const eq = assignment.indexOf('=');
  if (eq < 1) throw new ConfigError(`--set expects key.path=value, got '${assignment}'`);
  const keys = assignment.slice(0, eq).split('.');
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  return keys.reduceRight<unknown>((acc, key) => ({ [key]: acc }), value) as Plain;
}
