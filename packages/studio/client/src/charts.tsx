// Chart.js charts as components: lines (run curves), bars (results) and a scatter (embedding map),
// created once and updated in place as their data grows.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  ScatterController,
  Title,
  Tooltip,
  type ChartConfiguration,
  type ChartDataset,
} from 'chart.js';
import zoomPlugin from 'chartjs-plugin-zoom';
import { useEffect, useRef } from 'preact/hooks';

Chart.register(
  LineController,
  LineElement,
  PointElement,
  BarController,
  BarElement,
  ScatterController,
  CategoryScale,
  LinearScale,
  Legend,
  Title,
  Tooltip,
  zoomPlugin,
);
Chart.defaults.animation = false;
Chart.defaults.font.family = 'system-ui, sans-serif';

/** Distinct colors for overlaid runs and bar series. */
export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** A chart bound to a canvas; `configure` makes its config, `update` refreshes data on each render. */
function useChart(config: () => ChartConfiguration, update: (chart: Chart) => void, deps: unknown[]) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart | undefined>(undefined);
  useEffect(() => {
    chart.current = new Chart(canvas.current!, config());
    return () => chart.current?.destroy();
  }, []);
  useEffect(() => {
    if (!chart.current) return;
    update(chart.current);
    chart.current.update('none');
  }, deps);
  return { canvas, chart };
}

export interface Series {
  label: string;
  points: { x: number; y: number }[];
}

/** A line chart of series against steps; `data-points` counts its points (the live test reads it). */
export function LineChart({ title, series }: { title: string; series: Series[] }) {
  const datasets = (): ChartDataset<'line'>[] =>
    series.map((s, i) => ({
      label: s.label,
      data: s.points,
      borderColor: PALETTE[i % PALETTE.length],
      backgroundColor: PALETTE[i % PALETTE.length],
      pointRadius: s.points.length > 60 ? 0 : 2,
      borderWidth: 1.5,
    }));
  const { canvas } = useChart(
    () => ({
      type: 'line',
      data: { datasets: datasets() },
      options: {
        parsing: false,
        maintainAspectRatio: false,
        scales: { x: { type: 'linear', title: { display: true, text: 'step' } }, y: { type: 'linear' } },
        plugins: { title: { display: true, text: title }, legend: { display: series.length > 1 } },
      },
    }),
    (chart) => {
      chart.data.datasets = datasets();
    },
    [series],
  );
  const count = series.reduce((t, s) => t + s.points.length, 0);
  return (
    <div class="chart line" data-title={title} data-points={count}>
      <canvas ref={canvas} />
    </div>
  );
}

/** Grouped bars: one group per label, one bar per series. */
export function BarChart({
  title,
  labels,
  series,
}: {
  title: string;
  labels: string[];
  series: { label: string; values: (number | null)[] }[];
}) {
  const datasets = (): ChartDataset<'bar'>[] =>
    series.map((s, i) => ({ label: s.label, data: s.values as number[], backgroundColor: PALETTE[i % PALETTE.length] }));
  const { canvas } = useChart(
    () => ({
      type: 'bar',
      data: { labels, datasets: datasets() },
      options: {
        maintainAspectRatio: false,
        scales: { y: { title: { display: true, text: 'top-1 accuracy (%)' } } },
        plugins: { title: { display: true, text: title } },
      },
    }),
    (chart) => {
      chart.data.labels = labels;
      chart.data.datasets = datasets();
    },
    [labels, series],
  );
  return (
    <div class="chart bar" data-title={title}>
      <canvas ref={canvas} />
    </div>
  );
}

export interface ScatterGroup {
  label: string;
  color: string;
  points: { x: number; y: number; id: number }[];
}

/**
 * A zoomable scatter (wheel or pinch to zoom, drag to pan), one dataset per group so the legend
 * filters groups; hovering calls `onHover` with a point's id and position, clicking `onPick`.
 */
export function Scatter({
  groups,
  onHover,
  onPick,
}: {
  groups: ScatterGroup[];
  onHover: (hit?: { id: number; left: number; top: number }) => void;
  onPick: (id: number) => void;
}) {
  const datasets = (): ChartDataset<'scatter'>[] =>
    groups.map((g) => ({
      label: g.label,
      data: g.points,
      backgroundColor: g.color,
      borderColor: g.color,
      pointRadius: 3,
      pointHoverRadius: 6,
    }));
  // The chart keeps the handlers it was made with: route them through refs to the latest ones.
  const handlers = useRef({ onHover, onPick });
  handlers.current = { onHover, onPick };
  const idOf = (chart: Chart, element: { datasetIndex: number; index: number }) =>
    (chart.data.datasets[element.datasetIndex].data[element.index] as unknown as { id: number }).id;
  const { canvas, chart } = useChart(
    () => ({
      type: 'scatter',
      data: { datasets: datasets() },
      options: {
        parsing: false,
        maintainAspectRatio: false,
        // The nearest point answers wherever the pointer is, so small points are easy to reach.
        interaction: { mode: 'nearest', intersect: false },
        scales: { x: { display: false }, y: { display: false } },
        plugins: {
          legend: { position: 'right' },
          tooltip: { enabled: false },
          zoom: { zoom: { wheel: { enabled: true }, pinch: { enabled: true }, mode: 'xy' }, pan: { enabled: true, mode: 'xy' } },
        },
        onHover: (_event, elements, c) => {
          const hit = elements[0];
          handlers.current.onHover(hit ? { id: idOf(c, hit), left: hit.element.x, top: hit.element.y } : undefined);
        },
        onClick: (_event, elements, c) => elements[0] && handlers.current.onPick(idOf(c, elements[0])),
      },
    }),
    (c) => {
      c.data.datasets = datasets();
    },
    [groups],
  );
  const count = groups.reduce((t, g) => t + g.points.length, 0);
  return (
    <div class="chart scatter" data-points={count}>
      <canvas ref={canvas} />
      <button class="reset-zoom" onClick={() => chart.current?.resetZoom()}>
        reset zoom
      </button>
    </div>
  );
}
