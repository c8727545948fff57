// Pieces the pages share: loading JSON, errors, progress, and a task picture's panels.
import { useEffect, useState } from 'preact/hooks';
import { get, type PictureView } from './api.js';

/** GETs `path` (again when `path` or `version` changes). */
export function useJson<T>(path: string | undefined, version = 0): { data?: T; error?: string; loading: boolean } {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: !!path });
  useEffect(() => {
    if (!path) return;
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    get<T>(path).then(
      (data) => live && setState({ data, loading: false }),
      (e: Error) => live && setState({ error: e.message, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [path, version]);
  return state;
}

export const ErrorNote = ({ message }: { message?: string }) => (message ? <p class="error">{message}</p> : null);

export const Loading = ({ what }: { what: string }) => <p class="loading">{what}…</p>;

export function Progress({ stage, value }: { stage: string; value: number }) {
  return (
    <div class="progress" data-progress={value.toFixed(2)}>
      <progress max={1} value={value} />
      <span>
        {stage} ({Math.round(value * 100)}%)
      </span>
    </div>
  );
}

const captionClass = (caption: string) => (caption.includes('✗') ? 'wrong' : caption.includes('✓') ? 'right' : '');

/** A task's panels in its columns (e.g. input | prediction | truth), each with its caption. */
export function PictureGrid({ view }: { view: PictureView }) {
  // One item's column (a single uploaded image) reads better as a row.
  const columns = view.columns === 1 ? view.panels.length : view.columns;
  return (
    <div class="picture">
      <div class="panels" style={{ gridTemplateColumns: `repeat(${columns}, minmax(0, 72px))` }}>
        {view.panels.map((p) => (
          <figure>
            <img src={p.image} alt={p.caption} />
            <figcaption class={captionClass(p.caption)}>{p.caption}</figcaption>
          </figure>
        ))}
      </div>
      {view.summary && <p class="summary">{view.summary}</p>}
    </div>
  );
}
