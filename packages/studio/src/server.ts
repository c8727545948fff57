// Pretext Studio's HTTP server: the JSON API, server-sent events for live runs and jobs, and the
// built client. Listens on 127.0.0.1 unless told otherwise; a token made at launch guards every
// request that starts work.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { Engine } from './engine.js';
import { eventStream, HttpError, pollingStream, route, router, SECURITY_HEADERS, type Route } from './http.js';
import { isInside, resolveInside } from './paths.js';
import { findResults } from './results.js';
import { listRuns, MetricsFollower, readMetrics, readRun } from './runs.js';

export interface StudioOptions {
  /** The runs folder (created when missing). */
  runs: string;
  /** A `--data` spec: folder, store file, cifar10, fashion-mnist, synthetic. */
  data?: string;
  port?: number;
  host?: string;
  /** Where embedding maps are cached (default <runs>/.studio-cache). */
  cache?: string;
  /** Largest upload in bytes (default 20 MB) and decoded image in pixels (default 40 megapixels). */
  maxUploadBytes?: number;
  maxPixels?: number;
  /** Synthetic scenes per split when data is `synthetic` (default 512). */
  syntheticCount?: number;
  /** How often followed metrics files are checked, in ms (default 500). */
  followIntervalMs?: number;
  /** The built client (default: this package's dist/client). */
  clientDir?: string;
  log?: (line: string) => void;
  /** A fixed token (tests); default a fresh random one. */
  token?: string;
}

export interface Studio {
  server: Server;
  url: string;
  /** The URL with the token, which the page needs for actions. */
  urlWithToken: string;
  token: string;
  engine: Engine;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

export const defaultClientDir = (): string => fileURLToPath(new URL('../client', import.meta.url));

const runName = z.string().min(1).max(200);
const seed = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31 - 1);

function routes(engine: Engine, options: Required<Pick<StudioOptions, 'runs' | 'data' | 'followIntervalMs'>>): Route[] {
  const runsDir = options.runs;
  return [
    route({
      method: 'GET',
      path: '/api/info',
      handler: () => ({ json: { runs: runsDir, data: options.data, runCount: listRuns(runsDir).length } }),
    }),
    route({ method: 'GET', path: '/api/tasks', handler: () => ({ json: engine.tasks() }) }),
    route({
      method: 'POST',
      path: '/api/tasks/:task/examples',
      params: z.object({ task: z.string().regex(/^[\w-]+$/) }),
      body: z.strictObject({ seed: seed.default(0), count: z.number().int().min(1).max(16).default(6), run: runName.optional() }),
      handler: async ({ params, body }) => {
        if (!engine.tasks().some((t) => t.name === params.task)) throw new HttpError(404, `no task '${params.task}'`);
        return { json: await engine.examples(params.task, body) };
      },
    }),
    route({ method: 'GET', path: '/api/runs', handler: () => ({ json: listRuns(runsDir) }) }),
    route({
      method: 'GET',
      path: '/api/events/runs',
      handler: ({ request, response }) => {
        let last = '';
        return pollingStream(request, response, options.followIntervalMs, (send) => {
          const runs = JSON.stringify(listRuns(runsDir));
          if (runs !== last) send('runs', JSON.parse((last = runs)));
        });
      },
    }),
    route({
      method: 'GET',
      path: '/api/runs/:run',
      params: z.object({ run: runName }),
      handler: ({ params }) => ({ json: readRun(runsDir, params.run) }),
    }),
    route({
      method: 'GET',
      path: '/api/runs/:run/metrics',
      params: z.object({ run: runName }),
      handler: ({ params }) => ({ json: readMetrics(resolveInside(runsDir, params.run)) }),
    }),
    route({
      method: 'GET',
      path: '/api/runs/:run/events',
      params: z.object({ run: runName }),
      handler: ({ params, request, response }) => {
        const follower = new MetricsFollower(join(resolveInside(runsDir, params.run), 'metrics.jsonl'));
        let status = '';
        return pollingStream(request, response, options.followIntervalMs, (send) => {
          const { records, skipped, reset } = follower.poll();
          if (reset) send('reset', {});
          if (records.length || skipped) send('metrics', { records, skipped });
          const { config: _c, dataInfo: _d, ...run } = readRun(runsDir, params.run);
          if (run.status !== status || records.length) send('run', run);
          status = run.status;
        });
      },
    }),
    route({
      method: 'GET',
      path: '/api/runs/:run/layers',
      params: z.object({ run: runName }),
      handler: ({ params }) => ({ json: engine.runLayers(params.run) }),
    }),
    route({
      method: 'POST',
      path: '/api/try',
      query: z.object({ runs: z.string().max(4000).optional() }),
      rawBody: true,
      handler: async ({ query, body }) => {
        if (!body.length) throw new HttpError(400, 'the upload is empty');
        return { json: await engine.tryImage(body, query.runs?.split(',').filter(Boolean)) };
      },
    }),
    route({
      method: 'GET',
      path: '/api/samples/:split/:index',
      params: z.object({ split: z.enum(['train', 'test']), index: z.coerce.number().int().min(0).max(1e9) }),
      query: z.object({ size: z.coerce.number().int().min(8).max(1024).optional() }),
      handler: async ({ params, query }) => ({
        bytes: await engine.samplePng(params.split, params.index, query.size),
        type: 'image/png',
        cache: true,
      }),
    }),
    route({
      method: 'POST',
      path: '/api/embeddings',
      body: z.strictObject({
        run: runName,
        layer: z.string().regex(/^[\w.-]+$/),
        points: z.number().int().min(16).max(5000).default(1000),
      }),
      handler: ({ body }) => ({ json: engine.startEmbedding(body.run, body.layer, body.points) }),
    }),
    route({
      method: 'GET',
      path: '/api/embeddings/:key',
      params: z.object({ key: z.string() }),
      handler: ({ params }) => ({ json: engine.embedding(params.key) }),
    }),
    route({
      method: 'GET',
      path: '/api/embeddings/:key/neighbours',
      params: z.object({ key: z.string() }),
      query: z.object({ point: z.coerce.number().int().min(0), k: z.coerce.number().int().min(1).max(64).default(8) }),
      handler: ({ params, query }) => ({ json: engine.neighbours(params.key, query.point, query.k) }),
    }),
    route({
      method: 'GET',
      path: '/api/jobs/:id/events',
      params: z.object({ id: z.string().regex(/^[0-9a-f]{16}$/) }),
      handler: ({ params, request, response }) => {
        const job = engine.jobs.get(params.id);
        if (!job) throw new HttpError(404, `no job '${params.id}'`);
        const stream = eventStream(request, response);
        stream.send('job', job);
        if (job.state === 'done' || job.state === 'error') {
          response.end();
          return { streamed: true };
        }
        const stop = engine.jobs.subscribe(params.id, (view) => {
          stream.send('job', view);
          if (view.state === 'done' || view.state === 'error') {
            stop();
            response.end();
          }
        });
        void stream.closed.then(stop);
        return { streamed: true };
      },
    }),
    route({ method: 'GET', path: '/api/results', handler: () => ({ json: findResults(runsDir) }) }),
  ];
}

/** Serves the built client: files under clientDir only, index.html for `/`. */
function staticFiles(clientDir: string) {
  return async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const url = new URL(request.url ?? '/', 'http://studio.invalid');
    if (url.pathname.startsWith('/api/')) throw new HttpError(404, `no API route ${url.pathname}`);
    let path: string;
    try {
      path = resolve(clientDir, '.' + decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname));
    } catch {
      throw new HttpError(400, 'bad path');
    }
    if (!isInside(resolve(clientDir), path) || !MIME[extname(path)]) throw new HttpError(404, `no file ${url.pathname}`);
    if (!existsSync(path)) {
      if (url.pathname === '/')
        throw new HttpError(503, `the studio client is not built (${clientDir}): run \`npm run build\` in the repository root`);
      throw new HttpError(404, `no file ${url.pathname}`);
    }
    const real = realpathSync(path);
    if (!isInside(realpathSync(clientDir), real)) throw new HttpError(404, `no file ${url.pathname}`);
    response.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': MIME[extname(path)],
      'cache-control': url.pathname.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    response.end(request.method === 'HEAD' ? undefined : readFileSync(real));
  };
}

export async function startStudio(options: StudioOptions): Promise<Studio> {
  const log = options.log ?? ((line: string) => console.error(line));
  const runs = resolve(options.runs);
  mkdirSync(runs, { recursive: true });
  const cache = resolve(options.cache ?? join(runs, '.studio-cache'));
  const host = options.host ?? '127.0.0.1';
  const token = options.token ?? randomBytes(24).toString('base64url');
  const data = options.data ?? 'synthetic';
  const engine = new Engine({
    runsDir: runs,
    cacheDir: cache,
    data,
    syntheticCount: options.syntheticCount ?? 512,
    maxPixels: options.maxPixels ?? 40_000_000,
    log,
  });
  let port = options.port ?? 7860;
  const allowedHosts = () => (LOOPBACK.has(host) ? [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`] : []);
  const handler = router(
    routes(engine, { runs, data, followIntervalMs: options.followIntervalMs ?? 500 }),
    { token, allowedHosts, maxBody: options.maxUploadBytes ?? 20 * 1024 * 1024 },
    staticFiles(options.clientDir ?? defaultClientDir()),
    (e) => log(`studio: ${e.stack ?? e.message}`),
  );
  const server = createServer((request, response) => void handler(request, response));
  server.requestTimeout = 0;
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 7860, host, () => done());
  });
  port = (server.address() as AddressInfo).port;
  const anyAddress = host === '0.0.0.0' || host === '::';
  const shown = LOOPBACK.has(host) || anyAddress ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${shown}:${port}/`;
  return {
    server,
    url,
    urlWithToken: `${url}?token=${token}`,
    token,
    engine,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
