// A task's epoch charts (tasks/task.ts `charts`), redrawn from the run's metrics.jsonl.
import { join } from 'node:path';
import { makeDirectory } from '@pretext/torch';
import type { EpochChart } from '../tasks/task.js';
import { readEpochRecords } from '../util/run-files.js';
import { lineChartSvg, writeText } from './svg.js';

/** Writes `<run>/charts/<name>.svg` for each chart; returns the paths. */
export function writeEpochCharts(runDir: string, charts: readonly EpochChart[]): string[] {
  if (!charts.length) return [];
  const epochs = readEpochRecords(runDir).filter((e) => !e.partial);
  const dir = join(runDir, 'charts');
  makeDirectory(dir);
  return charts.map((chart) => {
    const series = chart.series.map(({ metric, label }) => ({
      name: label,
      points: epochs.filter((e) => Number.isFinite(e.metrics[metric])).map((e) => [e.epoch, e.metrics[metric]] as const),
    }));
    return writeText(join(dir, `${chart.name}.svg`), lineChartSvg(chart.title, series, { x: 'epoch', y: chart.yLabel }));
  });
}
