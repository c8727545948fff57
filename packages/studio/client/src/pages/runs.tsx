// Runs: every run of the runs folder, live; a run page with its config and curves that grow while
// it trains (server-sent events fed by metrics.jsonl), several runs overlaid on the same charts.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { subscribe, type MetricRecord, type RunDetail, type RunSummary } from '../api.js';
import { LineChart, type Series } from '../charts.js';
import { ErrorNote, useJson } from '../components.js';

const seconds = (s: number) => (s < 90 ? `${s.toFixed(0)} s` : s < 5400 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);
/** `2/5`, or with a budget `3 of budget 15min`, and `(part)` when a budget stopped inside an epoch. */
const epochText = ({ epochs: e }: RunSummary) =>
  `${e.done}${e.planned ? `/${e.planned}` : ''}${e.partial ? ' (part)' : ''}${e.budget ? ` · budget ${e.budget}` : ''}`;
const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(4));

export function RunsPage() {
  const [runs, setRuns] = useState<RunSummary[]>();
  const [chosen, setChosen] = useState<string[]>([]);
  useEffect(() => subscribe('/api/events/runs', { runs: setRuns }), []);
  const toggle = (name: string) => setChosen(chosen.includes(name) ? chosen.filter((n) => n !== name) : [...chosen, name]);
  return (
    <section>
      <h1>Runs</h1>
      {runs && runs.length === 0 && (
        <p class="lead empty">
          No runs yet. Start one in a terminal and it appears here as it trains:
          <code>pretext pretrain --task rotation --data &lt;your data&gt; --epochs 5 --out runs/rotation</code>
        </p>
      )}
      {runs && runs.length > 0 && (
        <>
          <table class="runs">
            <thead>
              <tr>
                <th></th>
                <th>run</th>
                <th>task</th>
                <th>backbone</th>
                <th>data</th>
                <th>status</th>
                <th>epochs</th>
                <th>steps</th>
                <th>train time</th>
                <th>CPU time</th>
                <th>last metrics</th>
              </tr>
            </thead>
            <tbody>
              {runs.map((r) => (
                <tr data-run={r.name}>
                  <td>
                    <input
                      type="checkbox"
                      checked={chosen.includes(r.name)}
                      onChange={() => toggle(r.name)}
                      aria-label={`compare ${r.name}`}
                    />
                  </td>
                  <td>
                    <a href={`#/runs/${encodeURIComponent(r.name)}`}>{r.name}</a>
                  </td>
                  <td>{r.task}</td>
                  <td>{r.backbone}</td>
                  <td class="data">{r.data}</td>
                  <td>
                    <span class={`status ${r.status}`}>{r.status}</span>
                  </td>
                  <td>{epochText(r)}</td>
                  <td>{r.steps}</td>
                  <td>{seconds(r.trainSeconds)}</td>
                  <td>{r.cpuSeconds === undefined ? '–' : seconds(r.cpuSeconds)}</td>
                  <td class="metrics">
                    {Object.entries(r.lastMetrics)
                      .slice(0, 3)
                      .map(([k, v]) => `${k} ${fmt(v)}`)
                      .join('  ')}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <p>
            <a
              class={`button ${chosen.length < 1 ? 'disabled' : ''}`}
              href={chosen.length ? `#/runs/${chosen.map(encodeURIComponent).join(',')}` : undefined}
            >
              Overlay the chosen runs ({chosen.length})
            </a>
          </p>
        </>
      )}
    </section>
  );
}

/** The numbers of a record to chart: its metrics, learning rate and images/s. */
function values(record: MetricRecord): Record<string, number> {
  const source: Record<string, unknown> =
    record.type === 'epoch' ? { ...record.metrics, lr: record.lr, imagesPerSecond: record.imagesPerSecond } : record;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(source))
    if (!['epoch', 'step', 'steps', 'seconds'].includes(k) && typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  return out;
}

const ORDER = (k: string) => (k.endsWith('loss') ? 0 : k === 'lr' ? 2 : k === 'imagesPerSecond' ? 3 : 1);

/** Follows one run's metrics over server-sent events. */
function useRunMetrics(name: string) {
  const [records, setRecords] = useState<MetricRecord[]>([]);
  const [run, setRun] = useState<RunSummary>();
  const [skipped, setSkipped] = useState(0);
  useEffect(() => {
    setRecords([]);
    return subscribe(`/api/runs/${encodeURIComponent(name)}/events`, {
      metrics: (m: { records: MetricRecord[]; skipped: number }) => {
        setRecords((old) => [...old, ...m.records]);
        setSkipped((s) => s + m.skipped);
      },
      reset: () => setRecords([]),
      run: setRun,
    });
  }, [name]);
  return { records, run, skipped };
}

function Follow({
  name,
  onData,
}: {
  name: string;
  onData: (name: string, records: MetricRecord[], run?: RunSummary, skipped?: number) => void;
}) {
  const { records, run, skipped } = useRunMetrics(name);
  useEffect(() => onData(name, records, run, skipped), [records, run, skipped]);
  return null;
}

export function RunPage({ names }: { names: string[] }) {
  const [byRun, setByRun] = useState<Record<string, { records: MetricRecord[]; run?: RunSummary; skipped: number }>>({});
  const single = names.length === 1 ? names[0] : undefined;
  const detail = useJson<RunDetail>(single && `/api/runs/${encodeURIComponent(single)}`);
  const onData = (name: string, records: MetricRecord[], run?: RunSummary, skipped = 0) =>
    setByRun((old) => ({ ...old, [name]: { records, run, skipped } }));
  const charts = useMemo(() => {
    const keys = new Map<string, Series[]>();
    names.forEach((name) => {
      const records = byRun[name]?.records ?? [];
      const steps = records.filter((r) => r.type === 'step');
      // Curves from the logged steps; a run that logged none yet is drawn from its epochs.
      const use = steps.length ? steps : records.filter((r) => r.type === 'epoch');
      for (const r of use) {
        const x = r.type === 'step' ? r.step! : r.steps!;
        for (const [k, y] of Object.entries(values(r))) {
          const series = keys.get(k) ?? [];
          keys.set(k, series);
          let s = series.find((s) => s.label === name);
          if (!s) series.push((s = { label: name, points: [] }));
          s.points.push({ x, y });
        }
      }
    });
    return [...keys.entries()].sort(([a], [b]) => ORDER(a) - ORDER(b) || a.localeCompare(b));
  }, [byRun]);
  const epochs = single ? (byRun[single]?.records ?? []).filter((r) => r.type === 'epoch') : [];
  return (
    <section>
      <p>
        <a href="#/runs">← all runs</a>
      </p>
      <h1>{names.join(' vs ')}</h1>
      {names.map((n) => (
        <Follow key={n} name={n} onData={onData} />
      ))}
      <div class="run-status">
        {names.map((n) => {
          const r = byRun[n]?.run;
          return (
            r && (
              <span data-run={n}>
                <b>{n}</b>: {r.task} · {r.backbone} · {r.data} · <span class={`status ${r.status}`}>{r.status}</span> · epoch {epochText(r)}{' '}
                · step {r.steps}
                {byRun[n].skipped ? ` · ${byRun[n].skipped} malformed metrics lines skipped` : ''}
              </span>
            )
          );
        })}
      </div>
      {charts.length === 0 && <p class="loading">waiting for the first logged step…</p>}
      <div class="charts">
        {charts.map(([key, series]) => (
          <LineChart key={key} title={key} series={series} />
        ))}
      </div>
      {epochs.length > 0 && (
        <table class="epochs">
          <thead>
            <tr>
              <th>epoch</th>
              <th>steps</th>
              {Object.keys(epochs[0].metrics ?? {}).map((k) => (
                <th>{k}</th>
              ))}
              <th>images/s</th>
              <th>time</th>
            </tr>
          </thead>
          <tbody>
            {epochs.map((e) => (
              <tr>
                <td>{e.epoch}</td>
                <td>{e.steps}</td>
                {Object.values(e.metrics ?? {}).map((v) => (
                  <td>{fmt(v)}</td>
                ))}
                <td>{(e.imagesPerSecond ?? 0).toFixed(0)}</td>
                <td>{seconds(e.seconds ?? 0)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorNote message={detail.error} />
      {detail.data && (
        <details class="config" open>
          <summary>config</summary>
          <pre>{JSON.stringify(detail.data.config, null, 2)}</pre>
          {detail.data.dataInfo && <pre>{JSON.stringify(detail.data.dataInfo)}</pre>}
        </details>
      )}
    </section>
  );
}
