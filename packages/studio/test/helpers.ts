// What the studio tests share: temporary folders (removed after the file), a small labeled store
// of synthetic scenes, a tiny trained run, and a started studio.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after } from 'node:test';
import { writeStore } from 'pretext/data/store';
import { syntheticStore } from 'pretext/data/synthetic/index';
import { startStudio, type Studio, type StudioOptions } from '../src/server.js';

export function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `pretext-studio-${name}-`));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const CLASSES = ['reddish', 'greenish', 'bluish'];

/** Synthetic scenes labeled by their dominant color channel, written as a store file. */
export function writeSceneStore(path: string, n = 160, size = 32): string {
  const store = syntheticStore(n, size, 7);
  const pixels = size * size;
  const labels = Int32Array.from({ length: n }, (_, i) => {
    const sums = [0, 0, 0];
    const image = store.images.subarray(i * pixels * 3, (i + 1) * pixels * 3);
    for (let p = 0; p < image.length; p++) sums[p % 3] += image[p];
    return sums.indexOf(Math.max(...sums));
  });
  writeStore(path, { ...store, labels, classNames: CLASSES });
  return path;
}

export const PRETEXT_CLI = new URL('../../../pretext/dist/src/cli/main.js', import.meta.url).pathname;

/** Arguments of a tiny rotation pretraining on `data` into `out` (seconds on one thread). */
export const tinyPretrain = (data: string, out: string, extra: string[] = []): string[] => [
  PRETEXT_CLI,
  'pretrain',
  '--task',
  'rotation',
  '--data',
  data,
  '--limit',
  '64',
  '--backbone',
  'alexnet-small',
  '--batch-size',
  '16',
  '--epochs',
  '1',
  '--threads',
  '1',
  '--out',
  out,
  ...extra,
];

/** A studio on a free port (the caller closes it). */
export const studioFor = (options: Partial<StudioOptions> & { runs: string }): Promise<Studio> =>
  startStudio({ port: 0, log: () => undefined, followIntervalMs: 150, ...options });

/** fetch against the studio with its own Host header; `token` adds the launch token. */
export function call(studio: Studio, path: string, init: RequestInit & { token?: boolean } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('x-studio-token', studio.token);
  return fetch(new URL(path, studio.url), { ...init, headers });
}

/** A raw HTTP request (no URL normalization, any Host or Origin header): status and parsed body. */
export function raw(
  studio: Studio,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer | string },
): Promise<{ status: number; body: any; type: string }> {
  const { port } = new URL(studio.url);
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path,
        headers: { host: `127.0.0.1:${port}`, ...options.headers },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () => {
          const text = Buffer.concat(chunks);
          const type = String(response.headers['content-type'] ?? '');
          resolve({
            status: response.statusCode ?? 0,
            type,
            body: type.startsWith('application/json') ? JSON.parse(text.toString()) : text,
          });
        });
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}
