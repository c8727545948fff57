// Training configuration: defaults < task defaults < config file (JSON or YAML) < CLI flags,
// validated by one schema whose errors name the field, the value and what is allowed.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

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
    optimizer: optimizerSchema,
    schedule: scheduleSchema.default({ name: 'constant' }),
    gradClip: z.number().positive().optional(),
    seed: z.number().int().nonnegative().default(0),
    /** Bit-exact resumption: fixes the thread count and restores every RNG and loader position. */
    deterministic: z.boolean().default(false),
    threads: z.number().int().positive().optional(),
    out: z.string().min(1),
    checkpointEverySteps: z.number().int().positive().default(500),
    keepLast: z.number().int().positive().default(3),
    logEverySteps: z.number().int().positive().default(20),
  })
  .strict();

export type TrainConfig = z.infer<typeof trainConfigSchema>;
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

/** Reads a JSON or YAML config file. */
export function readConfigFile(path: string): Plain {
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
