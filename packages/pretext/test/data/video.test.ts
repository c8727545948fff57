import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { ingestVideos, meanAbsoluteDifference, probeVideo } from '../../src/data/index.js';
import { pixelAt, quietOptions, rawImage, tempDir, writeFile } from './fixtures.js';

const hasFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0 && spawnSync('ffprobe', ['-version']).status === 0;
const skip = !hasFfmpeg && 'ffmpeg/ffprobe not installed (apt-get install ffmpeg)';
const dir = tempDir('video');

const RED = [255, 0, 0];
const GREEN = [0, 255, 0];
const BLUE = [0, 0, 255];

/** Encodes solid-colour 16x16 frames losslessly (FFV1 in Matroska) at 10 fps. */
function makeClip(path: string, colors: number[][]): string {
  writeFile(path, '');
  const frames = Buffer.concat(colors.map((color) => rawImage(16, 16, 3, () => color)));
  const args = [
    '-v',
    'error',
    '-y',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    '-s',
    '16x16',
    '-r',
    '10',
    '-i',
    'pipe:0',
    '-c:v',
    'ffv1',
    path,
  ];
  const result = spawnSync('ffmpeg', args, { input: frames });
  assert.equal(result.status, 0, String(result.stderr));
  return path;
}

const near = (actual: number[], expected: number[]): boolean => actual.every((v, i) => Math.abs(v - expected[i]) <= 2);

test('frames, per-clip metadata and motion scores of a generated clip', { skip }, async () => {
  const source = join(dir, 'flat');
  const clip = makeClip(join(source, 'colors.mkv'), [RED, RED, BLUE, BLUE, GREEN]);
  const probe = await probeVideo(clip);
  assert.deepEqual([probe.fps, probe.width, probe.height], [10, 16, 16]);

  const { store, report } = await ingestVideos({ source, size: 8, fps: 10, out: join(dir, 'flat.pxs'), ...quietOptions() });
  assert.deepEqual([store.n, store.height, store.width, store.channels], [5, 8, 8, 3]);
  const frame = (k: number): Uint8Array => store.images.subarray(k * 192, (k + 1) * 192);
  [RED, RED, BLUE, BLUE, GREEN].forEach((color, k) => assert.ok(near(pixelAt(frame(k), 8, 3, 3), color), `frame ${k}`));
  const motion = [...(store.frameMotion ?? [])];
  assert.equal(motion[0], 0, 'a clip starts with motion 0');
  assert.equal(motion[1], 0, 'identical frames');
  assert.ok(motion[2] > 100, `red -> blue: ${motion[2]}`);
  assert.equal(motion[3], 0);
  assert.ok(motion[4] > 100);
  assert.equal(motion[2], meanAbsoluteDifference(frame(2), frame(1)));
  assert.deepEqual(store.clips, [
    { path: 'colors.mkv', label: -1, fps: 10, sourceFps: 10, frameCount: 5, firstFrame: 0, sourceWidth: 16, sourceHeight: 16 },
  ]);
  assert.deepEqual(store.paths, ['colors.mkv#0', 'colors.mkv#1', 'colors.mkv#2', 'colors.mkv#3', 'colors.mkv#4']);
  assert.deepEqual([report.kind, report.samples, report.ingested], ['videos', 5, 1]);
});

test('class folders, frame-rate sampling, frame caps, bad clips and caching', { skip }, async () => {
  const source = join(dir, 'classes');
  makeClip(join(source, 'wave', 'a.mkv'), [RED, GREEN, BLUE, RED, GREEN, BLUE]);
  makeClip(join(source, 'clap', 'b.mkv'), [BLUE, BLUE, BLUE, BLUE]);
  // Long enough that ffprobe's first complaint is 'Truncating packet of size ...', not the reason.
  writeFile(join(source, 'clap', 'broken.mkv'), 'definitely not a matroska file\n'.repeat(500));
  writeFile(join(source, 'wave', 'empty.mp4'), '');
  writeFile(join(source, 'wave', 'notes.txt'), 'ffmpeg would render this text as ANSI art');
  const out = join(dir, 'classes.pxs');
  const options = { source, size: 4, fps: 5, maxFramesPerClip: 2, out };

  const first = await ingestVideos({ ...options, ...quietOptions() });
  const { store, report } = first;
  assert.equal(first.reused, false);
  assert.deepEqual(store.classNames, ['clap', 'wave']);
  assert.deepEqual(
    store.clips?.map((clip) => [clip.path, clip.label, clip.frameCount, clip.firstFrame]),
    [
      ['clap/b.mkv', 0, 2, 0],
      ['wave/a.mkv', 1, 2, 2],
    ],
  );
  assert.deepEqual([...store.labels], [0, 0, 1, 1]);
  // 10 fps sampled at 5 fps keeps every other frame: red, blue
  assert.ok(near(pixelAt(store.images.subarray(2 * 48), 4, 1, 1), RED));
  assert.ok(near(pixelAt(store.images.subarray(3 * 48), 4, 1, 1), BLUE));
  assert.deepEqual(
    [...(store.frameMotion ?? [])].map((m) => m > 0),
    [false, false, false, true],
  );
  assert.deepEqual(report.perClass, { clap: 1, wave: 1 });
  assert.deepEqual(
    report.skipped.map((issue) => [issue.path, issue.reason]),
    [
      ['clap/broken.mkv', 'not a video: no container format matches its content (it is text)'],
      ['wave/empty.mp4', 'empty file (0 bytes)'],
      ['wave/notes.txt', "not a video file (extension '.txt')"],
    ],
  );
  for (const maxFramesPerClip of [0, 2.5, -1]) {
    await assert.rejects(
      ingestVideos({ ...options, maxFramesPerClip, ...quietOptions() }),
      new RegExp(
        `max frames per clip must be a whole number of at least 1 \\(leave it out to keep every frame\\), got ${maxFramesPerClip}`,
      ),
    );
  }

  const again = await ingestVideos({ ...options, ...quietOptions() });
  assert.equal(again.reused, true);
  assert.deepEqual(again.store.frameMotion, store.frameMotion);
  assert.deepEqual(again.store.clips, store.clips);
  assert.equal((await ingestVideos({ ...options, fps: 10, ...quietOptions() })).reused, false, 'a new frame rate rebuilds');
});
