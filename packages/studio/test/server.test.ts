// The studio's server: its API on a tiny trained run, request validation, and its security
// (path traversal, the launch token, cross-origin requests, bad uploads), checking after each bad
// request that it keeps serving, and that it writes nothing outside the runs folder and its cache.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { train } from 'pretext/train/trainer';
import type { EmbeddingMap, JobView, Neighbour, PictureView, RunDetail, RunSummary } from '../src/index.js';
import type { Studio } from '../src/server.js';
import { call, CLASSES, raw, studioFor, tempDir, writeSceneStore } from './helpers.js';

/** Every file under `dir` with its size and mtime. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) files.set(relative(dir, path), `${statSync(path).size}:${statSync(path).mtimeMs}`);
    }
  };
  walk(dir);
  return files;
}

/** A PNG of random pixels (which do not compress). */
const noisePng = (side: number) =>
  sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } })
    .png()
    .toBuffer();

describe('studio server', () => {
  const root = tempDir('server');
  const runs = join(root, 'runs');
  const store = join(root, 'scenes.pxs');
  let studio: Studio;
  let before_: Map<string, string>;
  const alive = async () => assert.equal((await raw(studio, { path: '/api/info' })).status, 200, 'the server stopped serving');

  before(async () => {
    writeSceneStore(store, 96);
    await train(
      { task: 'rotation', data: store, limit: 32, backbone: 'alexnet-small', batchSize: 16, epochs: 1, threads: 1, out: join(runs, 'rot') },
      { progress: false, log: () => undefined },
    );
    // A run killed mid-write: two good lines, a cut-off one and stray text.
    mkdirSync(join(runs, 'broken'));
    writeFileSync(join(runs, 'broken', 'config.json'), JSON.stringify({ task: 'jigsaw', backbone: 'nin4', data: 'x', epochs: 3 }));
    const line = (step: number) => JSON.stringify({ type: 'step', epoch: 1, step, loss: 2 / step, time: new Date(0).toISOString() });
    writeFileSync(join(runs, 'broken', 'metrics.jsonl'), `${line(1)}\nnot json\n${line(2)}\n{"type":"step","epo`);
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const file of ['config.json', 'metrics.jsonl']) utimesSync(join(runs, 'broken', file), hourAgo, hourAgo);
    // Something outside the runs folder, and a link to it from inside.
    mkdirSync(join(root, 'secret'));
    writeFileSync(join(root, 'secret', 'config.json'), JSON.stringify({ task: 'secret-task', backbone: 'x', data: 'x', epochs: 1 }));
    symlinkSync(join(root, 'secret'), join(runs, 'escape'));
    studio = await studioFor({ runs, data: store, maxPixels: 1_000_000, maxUploadBytes: 256 * 1024 });
    before_ = snapshot(root);
  });
  after(() => studio?.close());

  it('lists runs with their status, skipping malformed metrics lines and links that leave the folder', async () => {
    const list = (await (await call(studio, '/api/runs')).json()) as RunSummary[];
    assert.deepEqual(list.map((r) => r.name).sort(), ['broken', 'rot']);
    const rot = list.find((r) => r.name === 'rot')!;
    assert.equal(rot.status, 'finished');
    assert.deepEqual(rot.epochs, { done: 1, planned: 1, partial: false });
    assert.ok(rot.checkpoints.includes('best'));
    const broken = (await (await call(studio, '/api/runs/broken')).json()) as RunDetail;
    assert.equal(broken.status, 'interrupted');
    assert.equal(broken.skippedLines, 2);
    const metrics = await (await call(studio, '/api/runs/broken/metrics')).json();
    assert.deepEqual(
      metrics.records.map((r: { step: number }) => r.step),
      [1, 2],
    );
  });

  it('refuses run and file names that leave the runs folder', async () => {
    for (const path of [
      '/api/runs/..%2Fsecret',
      '/api/runs/%2E%2E',
      '/api/runs/..%5Csecret',
      '/api/runs/%2Fetc',
      '/api/runs/%2Fetc%2Fpasswd/metrics',
      '/api/runs/escape',
      '/api/runs/escape/metrics',
      '/api/runs/rot%00/metrics',
      '/api/runs/../../secret',
      '/../../../etc/passwd',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/assets/..%2F..%2F..%2Fpackage.json',
      '/..%2F..%2Fsrc/server.ts',
    ]) {
      const r = await raw(studio, { path });
      assert.ok(r.status === 400 || r.status === 404, `${path} answered ${r.status}`);
      const text = Buffer.isBuffer(r.body) ? r.body.toString() : JSON.stringify(r.body);
      assert.ok(!text.includes('secret-task') && !text.includes('root:'), `${path} leaked a file outside`);
    }
    assert.equal((await raw(studio, { path: '/api/runs/escape' })).status, 400);
    await alive();
  });

  it('needs the launch token for actions', async () => {
    const body = JSON.stringify({ seed: 1, count: 2, run: 'rot' });
    const headers = { 'content-type': 'application/json' };
    assert.equal((await raw(studio, { method: 'POST', path: '/api/tasks/rotation/examples', headers, body })).status, 403);
    const wrong = await raw(studio, {
      method: 'POST',
      path: '/api/tasks/rotation/examples',
      headers: { ...headers, 'x-studio-token': 'guess' },
      body,
    });
    assert.equal(wrong.status, 403);
    assert.match(wrong.body.error, /token/);
    const right = await call(studio, '/api/tasks/rotation/examples', { method: 'POST', token: true, headers, body });
    assert.equal(right.status, 200);
    const view = (await right.json()) as PictureView;
    assert.equal(view.panels.length, 8, 'two images in four rotations');
    assert.ok(view.panels.every((p) => p.image.startsWith('data:image/png;base64,')));
    assert.match(view.summary!, /^\d\/8 right$/);
    assert.ok(
      view.panels.every((p) => /[✓✗]/.test(p.caption)),
      'each panel carries the answer mark',
    );
  });

  it('refuses cross-origin requests and other Host names', async () => {
    const token = { 'x-studio-token': studio.token, 'content-type': 'application/json' };
    const own = `http://${new URL(studio.url).host}`;
    assert.equal((await raw(studio, { path: '/api/runs', headers: { origin: 'http://evil.example' } })).status, 403);
    assert.equal((await raw(studio, { path: '/api/runs', headers: { 'sec-fetch-site': 'cross-site' } })).status, 403);
    assert.equal((await raw(studio, { path: '/api/runs', headers: { host: `evil.example:${new URL(studio.url).port}` } })).status, 403);
    const post = { method: 'POST', path: '/api/tasks/rotation/examples', body: '{}' };
    assert.equal((await raw(studio, { ...post, headers: { ...token, origin: 'http://evil.example' } })).status, 403);
    assert.equal((await raw(studio, { ...post, headers: { ...token, origin: own } })).status, 200);
    assert.equal((await raw(studio, { method: 'OPTIONS', path: '/api/try', headers: { origin: 'http://evil.example' } })).status, 403);
  });

  it('validates requests and names the bad field', async () => {
    const post = (path: string, body: string) =>
      raw(studio, { method: 'POST', path, body, headers: { 'x-studio-token': studio.token, 'content-type': 'application/json' } });
    const negative = await post('/api/tasks/rotation/examples', '{"seed":-1}');
    assert.equal(negative.status, 400);
    assert.match(negative.body.error, /'seed'/);
    assert.equal((await post('/api/tasks/rotation/examples', '{"seed":1,"extra":2}')).status, 400);
    assert.equal((await post('/api/tasks/rotation/examples', '{not json')).status, 400);
    assert.equal((await post('/api/tasks/no-such-task/examples', '{}')).status, 404);
    assert.equal((await post('/api/embeddings', '{"run":"rot","layer":"../x"}')).status, 400);
    assert.equal((await raw(studio, { path: '/api/samples/test/abc' })).status, 400);
    assert.equal((await raw(studio, { path: '/api/samples/valid/1' })).status, 400);
    assert.equal((await raw(studio, { path: '/api/samples/test/999999' })).status, 404);
    await alive();
  });

  it('answers a bad or huge upload with a 4xx and keeps serving; a good one with every trained task', async () => {
    const upload = (body: Buffer) =>
      raw(studio, {
        method: 'POST',
        path: '/api/try',
        body,
        headers: { 'x-studio-token': studio.token, 'content-type': 'application/octet-stream' },
      });
    const png = await noisePng(48);
    const cases: [string, Buffer, number, RegExp][] = [
      ['text', Buffer.from('hello, not an image'), 415, /not an image/],
      ['truncated PNG', png.subarray(0, 60), 415, /decod/],
      ['empty', Buffer.alloc(0), 400, /empty/],
      [
        'too many pixels',
        await sharp({ create: { width: 1200, height: 1000, channels: 3, background: '#888' } })
          .png()
          .toBuffer(),
        413,
        /pixels/,
      ],
      ['too many bytes', await noisePng(400), 413, /limit/],
    ];
    for (const [what, body, status, message] of cases) {
      const r = await upload(body);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, message, what);
      await alive();
    }
    const good = await upload(png);
    assert.equal(good.status, 200);
    const rotation = good.body.find((a: { task: string }) => a.task === 'rotation');
    assert.equal(rotation.run, 'rot');
    assert.equal(rotation.view.panels.length, 4, 'the image in four rotations, each answered');
    const jigsaw = good.body.find((a: { task: string }) => a.task === 'jigsaw');
    assert.match(jigsaw.note, /no trained run/);
  });

  it('maps a run layer as a job, caches it by checkpoint and layer, and finds nearest neighbours', async () => {
    const start = async () => {
      const r = await call(studio, '/api/embeddings', {
        method: 'POST',
        token: true,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ run: 'rot', layer: 'conv2', points: 64 }),
      });
      assert.equal(r.status, 200);
      return (await r.json()) as JobView;
    };
    const job = await start();
    // Follow the job's events until it ends.
    const events = await (await call(studio, `/api/jobs/${job.id}/events`)).text();
    const states = [...events.matchAll(/"state":"(\w+)"/g)].map((m) => m[1]);
    assert.equal(states.at(-1), 'done', events);
    const map = (await (await call(studio, `/api/embeddings/${job.key}`)).json()) as EmbeddingMap;
    assert.equal(map.points.length, 64);
    assert.deepEqual(map.classNames, CLASSES);
    assert.ok(map.points.every((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && p.label >= 0 && p.label < 3));
    assert.equal(new Set(map.points.map((p) => p.index)).size, 64, 'distinct samples');
    const again = await start();
    assert.equal(again.key, job.key);
    assert.equal(again.state, 'done', 'the same checkpoint and layer reuse the map');
    assert.equal(again.id, job.id);
    const neighbours = (await (await call(studio, `/api/embeddings/${job.key}/neighbours?point=5&k=6`)).json()) as Neighbour[];
    assert.equal(neighbours.length, 6);
    assert.ok(!neighbours.some((n) => n.point === 5), 'the query is not its own neighbour');
    for (let i = 1; i < neighbours.length; i++) assert.ok(neighbours[i - 1].similarity >= neighbours[i].similarity);
    assert.equal(neighbours[0].index, map.points[neighbours[0].point].index);
    const thumb = await raw(studio, { path: `/api/samples/test/${map.points[0].index}` });
    assert.equal(thumb.status, 200);
    assert.equal(thumb.type, 'image/png');
  });

  it('wrote nothing outside the runs folder and the cache', () => {
    const after = snapshot(root);
    const changed = [...after].filter(([path, stamp]) => before_.get(path) !== stamp).map(([path]) => path);
    assert.ok(changed.length > 0, 'the embedding map is cached');
    for (const path of changed) assert.ok(path.startsWith(join('runs', '.studio-cache')), `${path} was written`);
  });
});

describe('pretext-studio command', () => {
  const bin = new URL('../../bin/pretext-studio.js', import.meta.url).pathname;

  /** Starts the command, returns what it printed once its URL is out, and stops it. */
  async function launch(args: string[]): Promise<{ stdout: string; stderr: string }> {
    const child = spawn(process.execPath, [bin, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let [stdout, stderr] = ['', ''];
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          if (/no runs|\n.*\n/.test(stdout)) resolve();
        });
        child.on('exit', (code) => reject(new Error(`exited with ${code}: ${stderr}`)));
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      child.kill('SIGTERM');
    }
    return { stdout, stderr };
  }

  it('starts on an empty runs folder, prints its URL with a token and says what to do next', async () => {
    const runs = join(tempDir('empty'), 'runs');
    const { stdout, stderr } = await launch(['--runs', runs]);
    assert.match(stdout, /^Pretext Studio: http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{32}$/m);
    assert.match(stdout, /no runs in .* yet: .*\n\s+pretext pretrain --task rotation/);
    assert.doesNotMatch(stderr, /warning/);
  });

  it('warns when told to listen beyond this machine', async () => {
    const { stderr } = await launch(['--runs', join(tempDir('exposed'), 'runs'), '--host', '0.0.0.0']);
    assert.match(stderr, /warning: listening on 0\.0\.0\.0/);
  });
});
