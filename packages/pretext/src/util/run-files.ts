// Where a run keeps its checkpoints and metrics: the file layout that the trainer writes and that every reader
// (evaluation, fixed feature networks of other tasks, the studio) looks up, in one place below them.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface CheckpointListing {
  name: string;
  step: number;
  sidecar: string;
}

/** Complete checkpoints (sidecar and tensor file present), oldest first. */
export function listCheckpoints(dir: string): CheckpointListing[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /^ckpt-\d+\.json$/.test(f))
    .map((f) => ({ name: f.slice(0, -5), step: Number(f.slice(5, -5)), sidecar: join(dir, f) }))
    .filter((c) => existsSync(join(dir, `${c.name}.safetensors`)))
    .sort((a, b) => a.step - b.step);
}

/** Finds the checkpoint sidecar: a run folder's best (else latest) checkpoint, or a sidecar path. */
export function findCheckpoint(path: string): { sidecar: string; runDir: string } {
  if (!existsSync(path)) throw new Error(`--checkpoint: ${path} does not exist`);
  if (statSync(path).isFile()) return { sidecar: path, runDir: dirname(dirname(path)) };
  const dir = join(path, 'checkpoints');
  const best = join(dir, 'best.json');
  if (existsSync(best)) return { sidecar: best, runDir: path };
  const latest = listCheckpoints(dir).at(-1);
  if (!latest) throw new Error(`--checkpoint: no checkpoint in ${dir}`);
  return { sidecar: latest.sidecar, runDir: path };
}

/** An epoch line of a run's metrics.jsonl. */
export interface LoggedEpoch {
  epoch: number;
  steps?: number;
  seconds?: number;
  partial?: boolean;
  metrics: Record<string, number>;
}

/**
 * The epochs of a run's metrics.jsonl in order, one record each: a resumed run's later record of an
 * epoch replaces the one it repeats; a budget's partial last epoch is included, marked `partial`.
 */
export function readEpochRecords(runDir: string): LoggedEpoch[] {
  const path = join(runDir, 'metrics.jsonl');
  if (!existsSync(path)) return [];
  const byEpoch = new Map<number, LoggedEpoch>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let record: Partial<LoggedEpoch> & { type?: string };
    try {
      record = JSON.parse(line);
    } catch {
      continue; // a line cut short by a kill
    }
    if (record.type === 'epoch' && typeof record.epoch === 'number') byEpoch.set(record.epoch, { metrics: {}, ...record } as LoggedEpoch);
  }
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}
