// Tasks: one card per registered pretext task, with live examples from the user's data and, with a
// run chosen, the model's answers. Cards come from the task contract: a new task file appears here.
import { useEffect, useState } from 'preact/hooks';
import { hasToken, post, type PictureView, type TaskInfo } from '../api.js';
import { ErrorNote, Loading, PictureGrid, useJson } from '../components.js';

function TaskCard({ task }: { task: TaskInfo }) {
  const [seed, setSeed] = useState(0);
  const [run, setRun] = useState(task.runs[0] ?? '');
  const [view, setView] = useState<PictureView>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!hasToken()) return;
    let live = true;
    setBusy(true);
    setError(undefined);
    post<PictureView>(`/api/tasks/${encodeURIComponent(task.name)}/examples`, { seed, count: 4, run: run || undefined }).then(
      (v) => live && (setView(v), setBusy(false)),
      (e: Error) => live && (setError(e.message), setView(undefined), setBusy(false)),
    );
    return () => {
      live = false;
    };
  }, [seed, run]);
  return (
    <article class="card task" data-task={task.name}>
      <h2>{task.name}</h2>
      <p class="description">{task.description}</p>
      <p class="paper">{task.paper}</p>
      <div class="controls">
        <label>
          model{' '}
          <select value={run} onChange={(e) => setRun((e.target as HTMLSelectElement).value)}>
            <option value="">none: what the task asks</option>
            {task.runs.map((r) => (
              <option value={r}>{r}</option>
            ))}
          </select>
        </label>
        <button class="draw" disabled={busy || !hasToken()} onClick={() => setSeed(seed + 1)}>
          New examples
        </button>
      </div>
      {busy && <Loading what="drawing examples" />}
      <ErrorNote message={error} />
      {view && <PictureGrid view={view} />}
    </article>
  );
}

export function TasksPage() {
  const { data, error } = useJson<TaskInfo[]>('/api/tasks');
  return (
    <section>
      <h1>What each pretext task asks</h1>
      <p class="lead">
        Labels that come free from the images: each card draws examples from your data, the question the network is trained to answer, and
        with a trained run chosen, its answers (green right, red wrong).
      </p>
      <ErrorNote message={error} />
      <div class="cards">
        {data?.map((t) => (
          <TaskCard key={t.name} task={t} />
        ))}
      </div>
    </section>
  );
}
