// Results: each `pretext bench` results.json under the runs folder as sortable tables (tasks against
// random init and supervised baselines, per protocol and K) and bar charts.
import { useMemo, useState } from 'preact/hooks';
import type { BenchResults, ResultsFile } from '../api.js';
import { BarChart } from '../charts.js';
import { ErrorNote, Loading, useJson } from '../components.js';

type Row = BenchResults['rows'][number];

function DatasetTable({ dataset, columns, rows }: { dataset: string; columns: string[]; rows: Row[] }) {
  const [sort, setSort] = useState<{ key: string; down: boolean }>({ key: columns[0], down: true });
  const value = (r: Row, key: string): number | string =>
    key === 'name' ? r.name : key === 'kind' ? r.kind : key === 'cpu' ? (r.pretraining?.cpuMinutes ?? -1) : (r.cells[key]?.top1 ?? -1);
  const sorted = [...rows].sort((a, b) => {
    const [x, y] = [value(a, sort.key), value(b, sort.key)];
    const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return sort.down ? -order : order;
  });
  const best = Object.fromEntries(columns.map((c) => [c, Math.max(...rows.map((r) => r.cells[c]?.top1 ?? -1))]));
  const header = (key: string, label: string) => (
    <th
      class={`sortable ${sort.key === key ? (sort.down ? 'down' : 'up') : ''}`}
      data-key={key}
      onClick={() => setSort({ key, down: sort.key === key ? !sort.down : true })}
    >
      {label}
    </th>
  );
  return (
    <>
      <table class="results" data-dataset={dataset}>
        <thead>
          <tr>
            {header('name', 'row')}
            {header('kind', 'kind')}
            {columns.map((c) => header(c, c))}
            {header('cpu', 'pretraining CPU min')}
          </tr>
        </thead>
        <tbody>
          {sorted.map((r) => (
            <tr class={r.kind}>
              <td>{r.name}</td>
              <td>{r.kind}</td>
              {columns.map((c) => (
                <td class={r.cells[c] && r.cells[c].top1 === best[c] ? 'best' : ''}>{r.cells[c] ? r.cells[c].top1.toFixed(2) : '–'}</td>
              ))}
              <td>{r.pretraining?.cpuMinutes?.toFixed(1) ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <BarChart
        title={`${dataset}: top-1 accuracy by protocol`}
        labels={columns}
        series={rows.map((r) => ({ label: r.name, values: columns.map((c) => r.cells[c]?.top1 ?? null) }))}
      />
    </>
  );
}

function ResultsView({ file }: { file: ResultsFile }) {
  const results = file.results!;
  const datasets = useMemo(() => [...new Set(results.rows.map((r) => r.dataset))], [results]);
  return (
    <article class="card results-file" data-path={file.path}>
      <h2>{file.path}</h2>
      <p class="note">
        {new Date(results.createdAt).toLocaleString()} · backbone {String(results.settings.backbone ?? '?')} · block{' '}
        {String(results.settings.block ?? '?')} · top-1 % on the test split
      </p>
      {datasets.map((d) => (
        <div class="dataset">
          <h3>{d}</h3>
          <DatasetTable dataset={d} columns={results.columns} rows={results.rows.filter((r) => r.dataset === d)} />
        </div>
      ))}
    </article>
  );
}

export function ResultsPage() {
  const { data, error, loading } = useJson<ResultsFile[]>('/api/results');
  return (
    <section>
      <h1>Results</h1>
      <p class="lead">
        Linear and kNN probes (and more) of each pretext task against random init and a supervised baseline, from `pretext bench`.
      </p>
      {loading && <Loading what="looking for results.json files" />}
      <ErrorNote message={error} />
      {data && data.length === 0 && (
        <p class="empty">
          No bench results under the runs folder yet. Write some with{' '}
          <code>pretext bench --config bench/cifar10-rotation.yaml --out runs/bench</code>.
        </p>
      )}
      {data?.map((f) => (f.results ? <ResultsView file={f} /> : <ErrorNote message={`${f.path}: ${f.error}`} />))}
    </section>
  );
}
