// The studio's API from the page: JSON reads, token-carrying actions, and server-sent event streams.
export type {
  BenchResults,
  EmbeddingMap,
  JobView,
  MetricRecord,
  Neighbour,
  PictureView,
  ResultsFile,
  RunDetail,
  RunSummary,
  TaskInfo,
} from '../../src/index.js';

const TOKEN_KEY = 'pretext-studio-token';

/** Takes the launch token from the URL into session storage and out of the address bar. */
export function adoptToken(): void {
  const url = new URL(location.href);
  const token = url.searchParams.get('token');
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
}

export const hasToken = (): boolean => !!sessionStorage.getItem(TOKEN_KEY);

async function reply<T>(response: Response): Promise<T> {
  const body = (await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }))) as { error?: string };
  if (!response.ok) throw new Error(body.error ?? `${response.status} ${response.statusText}`);
  return body as T;
}

export const get = async <T>(path: string): Promise<T> => reply<T>(await fetch(path));

/** An action: POST with the launch token. */
export async function post<T>(path: string, body: unknown, type = 'application/json'): Promise<T> {
  const headers = { 'content-type': type, 'x-studio-token': sessionStorage.getItem(TOKEN_KEY) ?? '' };
  const payload = type === 'application/json' ? JSON.stringify(body) : (body as BodyInit);
  return reply<T>(await fetch(path, { method: 'POST', headers, body: payload }));
}

/** Subscribes to named server-sent events; returns the close function. */
export function subscribe(path: string, handlers: Record<string, (data: any) => void>): () => void {
  const source = new EventSource(path);
  for (const [event, handle] of Object.entries(handlers))
    source.addEventListener(event, (e) => handle(JSON.parse((e as MessageEvent).data)));
  return () => source.close();
}

export const sampleUrl = (split: string, index: number, size?: number): string =>
  `/api/samples/${split}/${index}${size ? `?size=${size}` : ''}`;
