// Benchmark results: every results.json that `pretext bench --out` wrote under the runs folder,
// checked against the shape the bench writes (files that do not match are listed with the reason).
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { z } from 'zod';
import { isDirectory } from './paths.js';

const cell = z.object({ protocol: z.string(), labelsPerClass: z.number().optional(), top1: z.number() });

const resultsSchema = z.object({
  createdAt: z.string(),
  settings: z.record(z.string(), z.unknown()),
  columns: z.array(z.string()),
  rows: z.array(
    z.object({
      dataset: z.string(),
      name: z.string(),
      kind: z.enum(['pretext', 'random', 'supervised']),
      seed: z.number().optional(),
      block: z.string(),
      cells: z.record(z.string(), cell),
      pretraining: z
        .object({
          epochs: z.number(),
          cpuMinutes: z.number().optional(),
          wallMinutes: z.number().optional(),
          budget: z.string().optional(),
        })
        .optional(),
      layers: z.array(z.object({ block: z.string(), top1: z.number() })).optional(),
      bestBlock: z.string().optional(),
    }),
  ),
});

export type BenchResults = z.infer<typeof resultsSchema>;

export interface ResultsFile {
  /** Path relative to the runs folder. */
  path: string;
  results?: BenchResults;
  error?: string;
}

const SKIP = new Set(['checkpoints', 'node_modules']);

/** results.json files up to `depth` folders below the runs folder, newest first. */
export function findResults(runsDir: string, depth = 3): ResultsFile[] {
  const found: ResultsFile[] = [];
  const walk = (dir: string, level: number) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.') || SKIP.has(entry.name)) continue;
      const path = join(dir, entry.name);
      if (entry.isFile() && entry.name === 'results.json') found.push(readResults(runsDir, path));
      else if (entry.isDirectory() && level < depth) walk(path, level + 1);
    }
  };
  if (isDirectory(runsDir)) walk(runsDir, 0);
  return found.sort((a, b) => (b.results?.createdAt ?? '').localeCompare(a.results?.createdAt ?? ''));
}

function readResults(runsDir: string, path: string): ResultsFile {
  const name = relative(runsDir, path);
  try {
    const parsed = resultsSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    if (!parsed.success)
      return {
        path: name,
        error: `not a pretext bench results file: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}`,
      };
    return { path: name, results: parsed.data };
  } catch (e) {
    return { path: name, error: `unreadable: ${(e as Error).message}` };
  }
}
