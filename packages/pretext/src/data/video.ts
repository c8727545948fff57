// Video folders -> frame store, decoded with ffmpeg (spawned) and probed with ffprobe.
//
// Each clip is sampled at `fps`, its shorter side scaled to `size` and the centre cropped, streamed
// as raw rgb24. The store holds every frame (label = clip label) plus per-clip metadata and a
// per-frame motion score.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import * as torch from '@pretext/torch';
import { firstLine, ingestSource, SkippedFileError, type IngestCommonOptions, type IngestResult, type SourceFile } from './source.js';
import type { ClipInfo, SampleStore } from './store.js';

export interface IngestVideosOptions extends IngestCommonOptions {
  /** Output side S: every frame becomes S x S RGB. */
  size: number;
  /** Frames sampled per second of video. */
  fps: number;
  /** Keep at most this many frames of each clip (from its start): a whole number >= 1; absent keeps all. */
  maxFramesPerClip?: number;
}

export interface VideoProbe {
  fps: number;
  width: number;
  height: number;
  durationSeconds: number;
}

interface ProcessResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a command to completion; a missing binary is a fatal error, not a skipped file. */
function runProcess(command: string, args: string[]): Promise<ProcessResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' ? new Error(`${command} not found on PATH (install ffmpeg, e.g. apt-get install ffmpeg)`) : error),
    );
    child.on('close', (code) => resolvePromise({ code, stdout: Buffer.concat(chunks), stderr: stderr.trim() }));
  });
}

/** Parses an ffprobe rate such as "30000/1001"; 0 when unknown. */
function parseRate(rate: string | undefined): number {
  const [numerator, denominator = '1'] = (rate ?? '').split('/');
  const value = Number(numerator) / Number(denominator);
  return Number.isFinite(value) && value > 0 ? value : 0;
}

/** Frame rate, size and duration of the first video stream; throws SkippedFileError when there is none. */
export async function probeVideo(path: string): Promise<VideoProbe> {
  const entries = 'stream=avg_frame_rate,r_frame_rate,width,height:format=duration';
  const { code, stdout, stderr } = await runProcess('ffprobe', [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-show_entries',
    entries,
    '-of',
    'json',
    path,
  ]);
  if (code !== 0) {
    if (/Invalid data found when processing input/.test(stderr))
      throw new SkippedFileError(`not a video: no container format matches its content${looksLikeText(path) ? ' (it is text)' : ''}`);
    throw new SkippedFileError(`not a readable video (ffprobe: ${firstLine(stderr)})`);
  }
  const parsed = JSON.parse(stdout.toString()) as {
    streams?: { avg_frame_rate?: string; r_frame_rate?: string; width?: number; height?: number }[];
    format?: { duration?: string };
  };
  const stream = parsed.streams?.[0];
  if (!stream) throw new SkippedFileError('no video stream');
  return {
    fps: parseRate(stream.avg_frame_rate) || parseRate(stream.r_frame_rate),
    width: stream.width ?? 0,
    height: stream.height ?? 0,
    durationSeconds: Number(parsed.format?.duration) || 0,
  };
}

/** Whether a file starts with printable text only (UTF-8 or ASCII, no control bytes but whitespace). */
function looksLikeText(path: string): boolean {
  const head = Buffer.alloc(4096);
  const fd = openSync(path, 'r');
  const read = readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  return read > 0 && head.subarray(0, read).every((byte) => byte >= 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d);
}

interface DecodedClip {
  frames: Buffer;
  frameCount: number;
  probe: VideoProbe;
}

interface VideoSettings {
  size: number;
  fps: number;
  maxFramesPerClip?: number;
}

/** Container extensions accepted as videos. Others are skipped: ffmpeg would happily "decode" a text file as ANSI art. */
export const VIDEO_EXTENSIONS = new Set([
  '.mp4',
  '.m4v',
  '.mov',
  '.avi',
  '.mkv',
  '.webm',
  '.mpg',
  '.mpeg',
  '.ts',
  '.mts',
  '.m2ts',
  '.wmv',
  '.flv',
  '.ogv',
  '.3gp',
  '.y4m',
  '.mxf',
]);

async function decodeClip(file: SourceFile, settings: VideoSettings): Promise<{ value: DecodedClip; warnings: string[] }> {
  const extension = extname(file.relPath).toLowerCase();
  if (!VIDEO_EXTENSIONS.has(extension)) throw new SkippedFileError(`not a video file (extension '${extension}')`);
  if (file.size === 0) throw new SkippedFileError('empty file (0 bytes)');
  const probe = await probeVideo(file.path);
  const { size, fps, maxFramesPerClip } = settings;
  const filter = `fps=${fps},scale=${size}:${size}:force_original_aspect_ratio=increase,crop=${size}:${size}`;
  const limit = maxFramesPerClip ? ['-frames:v', String(maxFramesPerClip)] : [];
  const args = [
    '-v',
    'error',
    '-nostdin',
    '-i',
    file.path,
    '-an',
    '-sn',
    '-vf',
    filter,
    ...limit,
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    'pipe:1',
  ];
  const { code, stdout, stderr } = await runProcess('ffmpeg', args);
  if (code !== 0) throw new SkippedFileError(`undecodable video (ffmpeg exit ${code}: ${firstLine(stderr)})`);
  const frameBytes = size * size * 3;
  const frameCount = Math.floor(stdout.length / frameBytes);
  if (frameCount === 0) throw new SkippedFileError(`no frames decoded${stderr ? ` (ffmpeg: ${firstLine(stderr)})` : ''}`);
  const warnings = stderr ? [`decoded ${frameCount} frames with ffmpeg errors: ${firstLine(stderr)}`] : [];
  return { value: { frames: stdout.subarray(0, frameCount * frameBytes), frameCount, probe }, warnings };
}

/** Mean absolute difference between two equally sized frames. */
export function meanAbsoluteDifference(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return a.length > 0 ? sum / a.length : 0;
}

/**
 * Motion score of each of a clip's `frameCount` frames (packed, `frameBytes` each): the
 * `meanAbsoluteDifference` to the previous frame, 0 for the first. The integer sums are exact and
 * the division runs in float64, so the scores equal the per-pair function's, rounded to float32.
 */
function clipMotion(frames: Uint8Array, frameCount: number, frameBytes: number): Float32Array {
  const motion = new Float32Array(frameCount);
  if (frameCount < 2 || frameBytes === 0) return motion;
  const scores = torch.tidy(() => {
    const all = torch.fromTypedArray(frames.subarray(0, frameCount * frameBytes), [frameCount, frameBytes]).to('int16');
    const diff = all.narrow(0, 1, frameCount - 1).sub(all.narrow(0, 0, frameCount - 1));
    return diff.abs().sum(1).double().div(frameBytes).float().toTypedArray();
  });
  motion.set(scores as Float32Array, 1);
  return motion;
}

function assembleFrames(
  settings: VideoSettings,
  classNames: string[],
  files: SourceFile[],
  decoded: (DecodedClip | undefined)[],
): SampleStore {
  const frameBytes = settings.size * settings.size * 3;
  const clips: ClipInfo[] = [];
  let n = 0;
  files.forEach((file, index) => {
    const clip = decoded[index];
    if (!clip) return;
    clips.push({
      path: file.relPath,
      label: file.label,
      fps: settings.fps,
      sourceFps: clip.probe.fps,
      frameCount: clip.frameCount,
      firstFrame: n,
      sourceWidth: clip.probe.width,
      sourceHeight: clip.probe.height,
    });
    n += clip.frameCount;
  });
  const images = new Uint8Array(n * frameBytes);
  const labels = new Int32Array(n);
  const frameMotion = new Float32Array(n);
  const paths: string[] = [];
  const clipFrames = decoded.filter((clip): clip is DecodedClip => clip !== undefined);
  clips.forEach((clip, c) => {
    const { frames } = clipFrames[c];
    images.set(frames, clip.firstFrame * frameBytes);
    labels.fill(clip.label, clip.firstFrame, clip.firstFrame + clip.frameCount);
    frameMotion.set(clipMotion(frames, clip.frameCount, frameBytes), clip.firstFrame);
    for (let k = 0; k < clip.frameCount; k++) paths.push(`${clip.path}#${k}`);
  });
  return { images, n, height: settings.size, width: settings.size, channels: 3, labels, classNames, paths, clips, frameMotion };
}

/**
 * Ingests a folder of videos (flat = unlabeled, or class subfolders) into a frame store at `out`.
 * Undecodable clips are skipped with a warning; caching works as in `ingestImages`.
 */
export async function ingestVideos(options: IngestVideosOptions): Promise<IngestResult> {
  if (!Number.isInteger(options.size) || options.size < 1) throw new Error(`size must be a positive integer, got ${options.size}`);
  if (!(options.fps > 0)) throw new Error(`fps must be positive, got ${options.fps}`);
  const { maxFramesPerClip } = options;
  if (maxFramesPerClip !== undefined && !(Number.isInteger(maxFramesPerClip) && maxFramesPerClip >= 1)) {
    throw new Error(`max frames per clip must be a whole number of at least 1 (leave it out to keep every frame), got ${maxFramesPerClip}`);
  }
  const settings: VideoSettings = { size: options.size, fps: options.fps, maxFramesPerClip: options.maxFramesPerClip };
  return ingestSource(options, {
    kind: 'videos',
    settings: { ...settings, decoder: 'ffmpeg-v1' },
    concurrency: options.concurrency ?? availableParallelism(),
    decode: (file) => decodeClip(file, settings),
    assemble: (listing, decoded) => assembleFrames(settings, listing.classNames, listing.files, decoded),
  });
}
