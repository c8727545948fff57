// Pretext Studio's page: a hash router over five pages.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { adoptToken, hasToken } from './api.js';
import { EmbeddingsPage } from './pages/embeddings.js';
import { ResultsPage } from './pages/results.js';
import { RunPage, RunsPage } from './pages/runs.js';
import { TasksPage } from './pages/tasks.js';
import { TryPage } from './pages/try.js';
import './style.css';

adoptToken();

const PAGES = [
  ['tasks', 'Tasks'],
  ['runs', 'Runs'],
  ['try', 'Try an image'],
  ['embeddings', 'Embeddings'],
  ['results', 'Results'],
] as const;

const currentRoute = () => location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);

function App() {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const onChange = () => setRoute(currentRoute());
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  const [page, arg] = [route[0] || 'tasks', route[1]];
  return (
    <>
      <header>
        <a class="brand" href="#/tasks">
          Pretext Studio
        </a>
        <nav>
          {PAGES.map(([id, label]) => (
            <a href={`#/${id}`} class={page === id ? 'active' : ''} data-page={id}>
              {label}
            </a>
          ))}
        </nav>
      </header>
      {!hasToken() && (
        <p class="banner">
          Read-only: open the URL the studio printed at launch (it carries a token) to draw examples, upload images and start maps.
        </p>
      )}
      <main>
        {page === 'tasks' && <TasksPage />}
        {page === 'runs' && (arg ? <RunPage names={arg.split(',')} /> : <RunsPage />)}
        {page === 'try' && <TryPage />}
        {page === 'embeddings' && <EmbeddingsPage />}
        {page === 'results' && <ResultsPage />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
