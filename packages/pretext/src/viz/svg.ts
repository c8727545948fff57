// Small SVG building blocks for the pictures: escaping, a class palette, the confusion heatmap, a
// grouped bar chart and a line chart.
import { writeFileAtomic } from '@pretext/torch';

export function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/** Tableau's 10 categorical colors, then evenly spaced hues. */
const TAB10 = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
export function classColor(index: number): string {
  return index < TAB10.length ? TAB10[index] : `hsl(${(index * 137.508) % 360}, 65%, 50%)`;
}

export function svgDocument(width: number, height: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...body,
    '</svg>',
  ].join('\n');
}

export function writeText(path: string, text: string): string {
  writeFileAtomic(path, Buffer.from(text));
  return path;
}

const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

/** Rows are true classes, columns predictions; cells shaded by the row-normalized rate, labeled with counts. */
export function confusionHeatmapSvg(confusion: number[][], classNames: string[], title = 'Confusion matrix'): string {
  const c = classNames.length;
  const cell = Math.max(28, Math.min(56, Math.floor(560 / Math.max(1, c))));
  const left = 130;
  const top = 70;
  const width = left + c * cell + 30;
  const height = top + c * cell + 110;
  const body: string[] = [`<text x="${width / 2}" y="24" font-size="16" text-anchor="middle">${escapeXml(title)}</text>`];
  confusion.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((count, j) => {
      const rate = count / total;
      const light = Math.round(100 - 62 * rate);
      const [x, y] = [left + j * cell, top + i * cell];
      body.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="hsl(212, 60%, ${light}%)" stroke="#fff"/>`);
      if (count) {
        const color = rate > 0.5 ? 'white' : '#222';
        body.push(
          `<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" font-size="${cell > 40 ? 12 : 9}" text-anchor="middle" fill="${color}">${count}</text>`,
        );
      }
    });
    body.push(
      `<text x="${left - 6}" y="${top + i * cell + cell / 2 + 4}" font-size="12" text-anchor="end">${escapeXml(classNames[i])}</text>`,
    );
  });
  classNames.forEach((name, j) => {
    const x = left + j * cell + cell / 2;
    const y = top + c * cell + 8;
    body.push(`<text x="${x}" y="${y}" font-size="12" text-anchor="end" transform="rotate(-50 ${x} ${y})">${escapeXml(name)}</text>`);
  });
  body.push(`<text x="${left + (c * cell) / 2}" y="${height - 8}" font-size="13" text-anchor="middle">predicted</text>`);
  body.push(
    `<text x="16" y="${top + (c * cell) / 2}" font-size="13" text-anchor="middle" transform="rotate(-90 16 ${top + (c * cell) / 2})">true class</text>`,
  );
  return svgDocument(width, height, body);
}

export interface BarSeries {
  name: string;
  /** One value per group; undefined leaves a gap. */
  values: (number | undefined)[];
}

/** Vertical grouped bars (one group per column label, one bar per series), values in percent. */
export function groupedBarChartSvg(title: string, groups: string[], series: BarSeries[], yLabel = 'top-1 accuracy (%)'): string {
  const plotHeight = 300;
  const barWidth = 14;
  const groupWidth = Math.max(60, series.length * barWidth + 20);
  const [left, top] = [60, 50];
  const legendHeight = 20 * series.length + 10;
  const width = left + groups.length * groupWidth + 30;
  const height = top + plotHeight + 70 + legendHeight;
  const y = (v: number) => top + plotHeight - (Math.max(0, Math.min(100, v)) / 100) * plotHeight;
  const body: string[] = [`<text x="${width / 2}" y="24" font-size="16" text-anchor="middle">${escapeXml(title)}</text>`];
  for (let tick = 0; tick <= 100; tick += 20) {
    body.push(`<line x1="${left}" x2="${width - 20}" y1="${y(tick)}" y2="${y(tick)}" stroke="#ddd"/>`);
    body.push(`<text x="${left - 6}" y="${y(tick) + 4}" font-size="11" text-anchor="end">${tick}</text>`);
  }
  body.push(
    `<text x="14" y="${top + plotHeight / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${top + plotHeight / 2})">${escapeXml(yLabel)}</text>`,
  );
  groups.forEach((group, g) => {
    const x0 = left + g * groupWidth + (groupWidth - series.length * barWidth) / 2;
    series.forEach((s, k) => {
      const v = s.values[g];
      if (v === undefined) return;
      const x = x0 + k * barWidth;
      body.push(
        `<rect x="${x}" y="${y(v)}" width="${barWidth - 2}" height="${top + plotHeight - y(v)}" fill="${classColor(k)}"><title>${escapeXml(`${s.name} ${group}: ${fmt(v)}%`)}</title></rect>`,
      );
    });
    const cx = left + g * groupWidth + groupWidth / 2;
    body.push(`<text x="${cx}" y="${top + plotHeight + 16}" font-size="11" text-anchor="middle">${escapeXml(group)}</text>`);
  });
  series.forEach((s, k) => {
    const ly = top + plotHeight + 50 + k * 20;
    body.push(`<rect x="${left}" y="${ly - 10}" width="12" height="12" fill="${classColor(k)}"/>`);
    body.push(`<text x="${left + 18}" y="${ly}" font-size="12">${escapeXml(s.name)}</text>`);
  });
  return svgDocument(width, height, body);
}

export interface LineSeries {
  name: string;
  points: readonly (readonly [number, number])[];
}

/** Lines over a numeric x axis with dots at the points; the y range is `yRange` or the data's, padded. */
export function lineChartSvg(
  title: string,
  series: readonly LineSeries[],
  labels: { x: string; y: string; yRange?: readonly [number, number] },
): string {
  const [plotWidth, plotHeight, left, top] = [480, 260, 64, 50];
  const points = series.flatMap((s) => s.points);
  const xs = points.map(([x]) => x);
  const ys = points.map(([, y]) => y);
  const [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  const pad = ys.length ? 0.05 * (Math.max(...ys) - Math.min(...ys) || 1) : 0;
  const [y0, y1] = labels.yRange ?? (ys.length ? [Math.min(...ys) - pad, Math.max(...ys) + pad] : [0, 1]);
  const px = (x: number) => left + ((x - x0) / (x1 - x0 || 1)) * plotWidth;
  const py = (y: number) => top + plotHeight - ((y - y0) / (y1 - y0 || 1)) * plotHeight;
  const legendHeight = 20 * series.length + 10;
  const [width, height] = [left + plotWidth + 30, top + plotHeight + 56 + legendHeight];
  const body: string[] = [`<text x="${width / 2}" y="24" font-size="16" text-anchor="middle">${escapeXml(title)}</text>`];
  const whole = xs.every(Number.isInteger);
  for (const { value: yv, label } of niceTicks(y0, y1, false)) {
    body.push(`<line x1="${left}" x2="${left + plotWidth}" y1="${py(yv)}" y2="${py(yv)}" stroke="#ddd"/>`);
    body.push(`<text x="${left - 6}" y="${py(yv) + 4}" font-size="11" text-anchor="end">${label}</text>`);
  }
  for (const { value: xv, label } of niceTicks(x0, x1, whole)) {
    body.push(`<text x="${px(xv)}" y="${top + plotHeight + 16}" font-size="11" text-anchor="middle">${label}</text>`);
  }
  body.push(
    `<text x="${left + plotWidth / 2}" y="${top + plotHeight + 36}" font-size="12" text-anchor="middle">${escapeXml(labels.x)}</text>`,
  );
  body.push(
    `<text x="14" y="${top + plotHeight / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${top + plotHeight / 2})">${escapeXml(labels.y)}</text>`,
  );
  series.forEach((s, k) => {
    const color = classColor(k);
    const path = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    if (s.points.length > 1) body.push(`<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const [x, y] of s.points) {
      body.push(
        `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${color}"><title>${escapeXml(`${s.name}: ${x}, ${Number(y.toPrecision(4))}`)}</title></circle>`,
      );
    }
    const ly = top + plotHeight + 60 + k * 20;
    body.push(`<rect x="${left}" y="${ly - 10}" width="12" height="12" fill="${color}"/>`);
    body.push(`<text x="${left + 18}" y="${ly}" font-size="12">${escapeXml(s.name)}</text>`);
  });
  return svgDocument(width, height, body);
}

/** Tick labels at 1, 2 or 5 times a power of ten inside [lo, hi], four to eight of them; whole numbers if asked. */
function niceTicks(lo: number, hi: number, whole: boolean): { value: number; label: string }[] {
  const rough = (hi - lo) / 8 || 1;
  const power = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough)!;
  if (whole) step = Math.max(1, Math.round(step));
  // As many decimals as the step has.
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  const ticks: { value: number; label: string }[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + 1e-9 * step; t += step) ticks.push({ value: t, label: t.toFixed(decimals) });
  return ticks;
}
