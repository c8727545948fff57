// Try an image: drop or pick one; every task with a trained run answers it.
import { useState } from 'preact/hooks';
import { hasToken, post, type PictureView } from '../api.js';
import { ErrorNote, Loading, PictureGrid } from '../components.js';

interface Answer {
  task: string;
  run?: string;
  view?: PictureView;
  note?: string;
}

export function TryPage() {
  const [preview, setPreview] = useState<string>();
  const [answers, setAnswers] = useState<Answer[]>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [over, setOver] = useState(false);
  const send = async (file: File | undefined) => {
    if (!file) return;
    setPreview(URL.createObjectURL(file));
    setBusy(true);
    setError(undefined);
    setAnswers(undefined);
    try {
      setAnswers(await post<Answer[]>('/api/try', file, 'application/octet-stream'));
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section>
      <h1>Try an image</h1>
      <p class="lead">Every task with a trained run answers it: the rotation it sees, the puzzle solved, the missing pixels filled in.</p>
      <label
        class={`drop ${over ? 'over' : ''}`}
        onDragOver={(e) => (e.preventDefault(), setOver(true))}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          void send(e.dataTransfer?.files[0]);
        }}
      >
        {preview ? <img class="preview" src={preview} alt="your image" /> : <span>Drop an image here, or click to pick one</span>}
        <input type="file" accept="image/*" disabled={!hasToken()} onChange={(e) => void send((e.target as HTMLInputElement).files?.[0])} />
      </label>
      {busy && <Loading what="every task is looking at it" />}
      <ErrorNote message={error} />
      <div class="cards">
        {answers?.map((a) => (
          <article class={`card answer ${a.view ? '' : 'none'}`} data-task={a.task}>
            <h2>{a.task}</h2>
            {a.run && <p class="paper">run {a.run}</p>}
            {a.note && <p class="note">{a.note}</p>}
            {a.view && <PictureGrid view={a.view} />}
          </article>
        ))}
      </div>
    </section>
  );
}
