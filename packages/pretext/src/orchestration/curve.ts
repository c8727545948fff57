// How fast a pretext task buys quality: a probe on each kept checkpoint of one or more runs, against
// the CPU minutes of pretraining each had cost, drawn beside the same network at random init and
// beside that network trained end to end on the probe's labels for the same CPU minutes.
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { makeDirectory } from '@pretext/torch';
import { evaluate, type EvalOptions } from '../eval/protocols.js';
import { resolvePrecision } from '../util/precision.js';
import { listCheckpoints } from '../util/run-files.js';
import { lineChartSvg, writeText } from '../viz/svg.js';

export interface CurveOptions extends Omit<EvalOptions, 'checkpoint' | 'init' | 'backbone'> {
  /** Run folders, one line each. */
  runs: string[];
  /** Folder for curve.json and curve.svg. */
  out: string;
  /** Also probe the first run's network at random init (the 0-minute point and a flat line). */
  random?: boolean;
  /**
   * The supervised baseline at these CPU minutes: the first run's network from random init, trained
   * end to end on the probe's labeled samples under that budget, then scored on the same test samples.
   */
  supervised?: number[];
}

export interface CurvePoint {
  step: number;
  cpuMinutes: number;
  top1: number;
}

export interface CurveResult {
  runs: { run: string; points: CurvePoint[] }[];
  random?: number;
  supervised?: { cpuMinutes: number; top1: number }[];
  files: { json: string; svg: string };
}

/** CPU seconds of pretraining behind a checkpoint, as the trainer records them. */
function cpuSecondsOf(sidecar: string): number | undefined {
  const { info } = JSON.parse(readFileSync(sidecar, 'utf8')) as { info?: { cpuSeconds?: number; budgetSpent?: number } };
  return info?.cpuSeconds;
}

export async function accuracyCurve(options: CurveOptions): Promise<CurveResult> {
  const { runs, out, random, supervised, ...protocol } = options;
  if (!runs.length) throw new Error('curve: give at least one run (--checkpoint runs/x)');
  const result: CurveResult = { runs: [], files: { json: join(out, 'curve.json'), svg: join(out, 'curve.svg') } };
  if (random) {
    result.random = (await evaluate({ ...protocol, checkpoint: runs[0], init: 'random' })).top1;
    options.log?.(`random init: ${result.random.toFixed(2)}%`);
  }
  for (const run of runs) {
    const points: CurvePoint[] = [];
    for (const checkpoint of listCheckpoints(join(run, 'checkpoints'))) {
      const seconds = cpuSecondsOf(checkpoint.sidecar);
      if (seconds === undefined) {
        options.log?.(`warning: ${checkpoint.sidecar} does not record its CPU time (written before Pretext kept it); skipped`);
        continue;
      }
      const { top1 } = await evaluate({ ...protocol, checkpoint: checkpoint.sidecar });
      points.push({ step: checkpoint.step, cpuMinutes: seconds / 60, top1 });
      options.log?.(`${basename(run)} step ${checkpoint.step} (${(seconds / 60).toFixed(1)} CPU min): ${top1.toFixed(2)}%`);
    }
    result.runs.push({ run, points });
  }
  if (supervised?.length) {
    result.supervised = [];
    for (const cpuMinutes of [...supervised].sort((a, b) => a - b)) {
      // At the precision a pretraining run takes by default (bf16 where this CPU computes it natively).
      const finetune = { precision: resolvePrecision('auto'), ...protocol.finetune, budget: { cpuMinutes } };
      // The whole network, its head on the last block.
      const baseline = {
        ...protocol,
        layer: undefined,
        protocol: 'finetune' as const,
        finetune,
        checkpoint: runs[0],
        init: 'random' as const,
      };
      const { top1, compute } = await evaluate(baseline);
      result.supervised.push({ cpuMinutes: compute.cpuSeconds / 60, top1 });
      options.log?.(`supervised, budget ${cpuMinutes} CPU min (${(compute.cpuSeconds / 60).toFixed(1)} spent): ${top1.toFixed(2)}%`);
    }
  }
  const series = result.runs.map(({ run, points }) => ({
    name: basename(run),
    points: [...(result.random === undefined ? [] : [[0, result.random] as const]), ...points.map((p) => [p.cpuMinutes, p.top1] as const)],
  }));
  const longest = Math.max(0, ...result.runs.flatMap((r) => r.points.map((p) => p.cpuMinutes)));
  if (result.random !== undefined)
    series.push({ name: 'random init', points: [[0, result.random] as const, [longest, result.random] as const] });
  if (result.supervised) series.push({ name: 'supervised', points: result.supervised.map((p) => [p.cpuMinutes, p.top1] as const) });
  const what = `${protocol.protocol} probe, ${protocol.layer ?? 'last block'}, ${protocol.pool ?? 'gap'}`;
  makeDirectory(out);
  writeText(result.files.json, JSON.stringify({ ...result, protocol: what }, null, 2));
  writeText(
    result.files.svg,
    lineChartSvg(`Top-1 (${what}) against pretraining CPU minutes`, series, { x: 'pretraining CPU minutes', y: 'top-1 accuracy (%)' }),
  );
  return result;
}
