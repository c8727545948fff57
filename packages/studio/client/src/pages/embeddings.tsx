// Embeddings: a UMAP map of a sample of the data in a run's feature space at a chosen layer, colored
// by class, zoomable, thumbnails on hover; clicking a point shows its nearest neighbours.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { get, hasToken, post, sampleUrl, subscribe, type EmbeddingMap, type JobView, type Neighbour, type RunSummary } from '../api.js';
import { Scatter, type ScatterGroup } from '../charts.js';
import { ErrorNote, Progress, useJson } from '../components.js';

export function EmbeddingsPage() {
  const runs = useJson<RunSummary[]>('/api/runs');
  const trained = (runs.data ?? []).filter((r) => r.checkpoints.length);
  const [run, setRun] = useState('');
  const [layer, setLayer] = useState('');
  const [points, setPoints] = useState(1000);
  const layers = useJson<{ layers: string[] }>(run ? `/api/runs/${encodeURIComponent(run)}/layers` : undefined);
  const [job, setJob] = useState<JobView>();
  const [map, setMap] = useState<EmbeddingMap>();
  const [error, setError] = useState<string>();
  const [hover, setHover] = useState<{ id: number; left: number; top: number }>();
  const [picked, setPicked] = useState<number>();
  const [neighbours, setNeighbours] = useState<Neighbour[]>();
  const [filter, setFilter] = useState('');
  useEffect(() => {
    if (!run && trained.length) setRun(trained[0].name);
  }, [runs.data]);
  useEffect(() => {
    const names = layers.data?.layers;
    if (names?.length && !names.includes(layer)) setLayer(names[names.length - 1]);
  }, [layers.data]);

  const start = async () => {
    setError(undefined);
    setMap(undefined);
    setPicked(undefined);
    setNeighbours(undefined);
    try {
      const started = await post<JobView>('/api/embeddings', { run, layer, points });
      setJob(started);
      const close = subscribe(`/api/jobs/${started.id}/events`, {
        job: (view: JobView) => {
          setJob(view);
          if (view.state === 'done') {
            close();
            get<EmbeddingMap>(`/api/embeddings/${view.key}`).then(setMap, (e: Error) => setError(e.message));
          } else if (view.state === 'error') {
            close();
            setError(view.error);
          }
        },
      });
    } catch (e) {
      setError((e as Error).message);
    }
  };

  useEffect(() => {
    if (!map || picked === undefined) return;
    get<Neighbour[]>(`/api/embeddings/${map.key}/neighbours?point=${picked}&k=12`).then(setNeighbours, (e: Error) => setError(e.message));
  }, [picked, map]);

  const className = (label: number) => (label >= 0 ? (map?.classNames[label] ?? String(label)) : 'unlabeled');
  const groups = useMemo<ScatterGroup[]>(() => {
    if (!map) return [];
    const byLabel = new Map<number, ScatterGroup>();
    map.points.forEach((p, id) => {
      if (filter && !className(p.label).toLowerCase().includes(filter.toLowerCase())) return;
      let g = byLabel.get(p.label);
      if (!g) byLabel.set(p.label, (g = { label: className(p.label), color: p.label >= 0 ? map.colors[p.label] : '#607d8b', points: [] }));
      g.points.push({ x: p.x, y: p.y, id });
    });
    return [...byLabel.entries()].sort(([a], [b]) => a - b).map(([, g]) => g);
  }, [map, filter]);
  const thumb = (index: number) => sampleUrl(map!.split, index, map!.imageSize);
  const hovered = hover && map?.points[hover.id];

  return (
    <section>
      <h1>Embeddings</h1>
      <p class="lead">
        How a trained network arranges your images: similar features land close together. Hover for the image, click for its nearest
        neighbours.
      </p>
      {runs.data && !trained.length && <p class="empty">No run with a checkpoint yet: train one, then map its features here.</p>}
      <div class="controls">
        <label>
          run{' '}
          <select value={run} onChange={(e) => setRun((e.target as HTMLSelectElement).value)} name="run">
            {trained.map((r) => (
              <option value={r.name}>
                {r.name} ({r.task}, {r.backbone})
              </option>
            ))}
          </select>
        </label>
        <label>
          layer{' '}
          <select value={layer} onChange={(e) => setLayer((e.target as HTMLSelectElement).value)} name="layer">
            {layers.data?.layers.map((l) => (
              <option value={l}>{l}</option>
            ))}
          </select>
        </label>
        <label>
          points{' '}
          <select value={points} onChange={(e) => setPoints(Number((e.target as HTMLSelectElement).value))}>
            {[250, 500, 1000, 2000].map((n) => (
              <option value={n}>{n}</option>
            ))}
          </select>
        </label>
        <button
          class="map"
          disabled={!run || !layer || !hasToken() || job?.state === 'running' || job?.state === 'queued'}
          onClick={() => void start()}
        >
          Map
        </button>
        {map && (
          <label>
            filter classes{' '}
            <input value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} placeholder="class name" />
          </label>
        )}
      </div>
      {job && job.state !== 'done' && job.state !== 'error' && <Progress stage={job.stage} value={job.progress} />}
      <ErrorNote message={error ?? layers.error} />
      {map && (
        <div class="map-area">
          <p class="note">
            {map.points.length} {map.data} {map.split} images, {map.layer} of {map.run} ({map.dims} dims)
          </p>
          <div class="map-frame">
            <Scatter groups={groups} onHover={setHover} onPick={setPicked} />
            {hovered && (
              <div class="thumb" style={{ left: `${hover!.left + 12}px`, top: `${hover!.top + 12}px` }}>
                <img src={thumb(hovered.index)} alt="" />
                <span>{className(hovered.label)}</span>
              </div>
            )}
          </div>
        </div>
      )}
      {map && picked !== undefined && (
        <div class="neighbours">
          <h2>Nearest neighbours in feature space</h2>
          <div class="row">
            <figure class="query">
              <img src={thumb(map.points[picked].index)} alt="query" />
              <figcaption>{className(map.points[picked].label)} (query)</figcaption>
            </figure>
            {neighbours?.map((n) => (
              <figure class={map.points[picked].label >= 0 ? (n.label === map.points[picked].label ? 'same' : 'other') : ''}>
                <img src={thumb(n.index)} alt={className(n.label)} />
                <figcaption>
                  {className(n.label)} · {n.similarity.toFixed(2)}
                </figcaption>
              </figure>
            ))}
          </div>
        </div>
      )}
    </section>
  );
}
