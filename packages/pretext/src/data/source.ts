// Shared machinery of the image and video ingests: listing a source folder (flat or class
// subfolders), fingerprinting it, reusing a cached store, decoding files in parallel with
// progress, and the final report.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { Progress } from './progress.js';
import { checkStoreOutput, loadStoreIf, writeStore, type SampleStore } from './store.js';

/** `flat`: every file directly in the folder, unlabeled. `classes`: one subfolder per class (torchvision ImageFolder). */
export type SourceLayout = 'flat' | 'classes';

export interface SourceFile {
  path: string;
  /** Path relative to the source folder, with `/` separators. */
  relPath: string;
  size: number;
  mtimeMs: number;
  /** Class index, -1 in a flat folder. */
  label: number;
}

/** A file that was skipped or warned about, and why. */
export interface FileIssue {
  path: string;
  reason: string;
}

export interface SourceListing {
  root: string;
  layout: SourceLayout;
  classNames: string[];
  /** Candidate files, sorted by class then relative path. */
  files: SourceFile[];
  /** Entries that cannot be candidates (stray files, broken links, sockets...). */
  skipped: FileIssue[];
}

/** Thrown by a decoder to skip one file; any other error aborts the ingest. */
export class SkippedFileError extends Error {}

/** First line of a (possibly multi-line) message, e.g. a tool's stderr or a libvips error. */
export const firstLine = (text: string): string => text.split('\n')[0] || 'no message';

/** A short reason for a failed file-system call. */
export function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOENT':
      return 'file not found (removed, or a broken link)';
    case 'ELOOP':
      return 'symbolic link loop';
    case 'EISDIR':
      return 'is a directory';
    default:
      return (error as Error).message;
  }
}

const byName = (a: Dirent, b: Dirent): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** A folder's entries sorted by code point (like Python's sorted()), hidden ones (leading dot) apart. */
function folderEntries(dir: string): { visible: Dirent[]; hidden: Dirent[] } {
  const entries = readdirSync(dir, { withFileTypes: true }).sort(byName);
  return { visible: entries.filter((entry) => !entry.name.startsWith('.')), hidden: entries.filter((entry) => entry.name.startsWith('.')) };
}

type EntryKind = { kind: 'dir' } | { kind: 'file'; size: number; mtimeMs: number } | { kind: 'other'; reason: string };

/** Classifies an entry, following symbolic links. */
function entryKind(path: string): EntryKind {
  try {
    const stats = statSync(path);
    if (stats.isDirectory()) return { kind: 'dir' };
    if (stats.isFile()) return { kind: 'file', size: stats.size, mtimeMs: stats.mtimeMs };
    return { kind: 'other', reason: 'not a regular file' };
  } catch (error) {
    return { kind: 'other', reason: describeFsError(error) };
  }
}

/**
 * State of one listing walk. Folders and files are known by real path, so that a folder reached
 * again through a symbolic link (a loop back to an ancestor, or a second link to the same folder)
 * is searched once and each file is listed once.
 */
interface Walk {
  listing: SourceListing;
  /** Real path of each folder searched (or claimed as a class folder) -> its relative path ('' for the source folder). */
  folders: Map<string, string>;
  /** Real path of each file listed -> its relative path. */
  files: Map<string, string>;
}

const shown = (relPath: string): string => relPath || 'the source folder';

function skipHidden(walk: Walk, dir: string, relDir: string, hidden: Dirent[]): void {
  for (const entry of hidden) {
    const relPath = relDir ? `${relDir}/${entry.name}` : entry.name;
    const folder = entryKind(join(dir, entry.name)).kind === 'dir';
    walk.listing.skipped.push({
      path: relPath,
      reason: folder ? 'hidden folder (name starts with a dot), not searched' : 'hidden file (name starts with a dot)',
    });
  }
}

function collectFiles(walk: Walk, dir: string, relDir: string, label: number, ancestors: ReadonlySet<string>): void {
  const { listing } = walk;
  let entries: { visible: Dirent[]; hidden: Dirent[] };
  let realDir: string;
  try {
    realDir = realpathSync(dir);
    entries = folderEntries(dir);
  } catch (error) {
    listing.skipped.push({ path: relDir, reason: `cannot list folder: ${describeFsError(error)}` });
    return;
  }
  const previously = walk.folders.get(realDir);
  if (previously !== undefined && previously !== relDir) {
    const loop = ancestors.has(realDir);
    const reason = loop ? `symbolic link loop: leads back to ${shown(previously)}` : `same folder as ${shown(previously)}, searched once`;
    listing.skipped.push({ path: relDir, reason });
    return;
  }
  walk.folders.set(realDir, relDir);
  const inside = new Set([...ancestors, realDir]);
  skipHidden(walk, dir, relDir, entries.hidden);
  for (const entry of entries.visible) {
    const path = join(dir, entry.name);
    const relPath = relDir ? `${relDir}/${entry.name}` : entry.name;
    const info = entryKind(path);
    if (info.kind === 'dir') {
      collectFiles(walk, path, relPath, label, inside);
    } else if (info.kind === 'file') {
      const real = entry.isSymbolicLink() ? realpathSync(path) : join(realDir, entry.name);
      const first = walk.files.get(real);
      if (first !== undefined) listing.skipped.push({ path: relPath, reason: `same file as ${first}, listed once` });
      else {
        walk.files.set(real, relPath);
        listing.files.push({ path, relPath, size: info.size, mtimeMs: info.mtimeMs, label });
      }
    } else listing.skipped.push({ path: relPath, reason: info.reason });
  }
}

const byRelPath = (a: SourceFile, b: SourceFile): number =>
  a.label - b.label || (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0);

/**
 * Lists a source folder. With at least one (visible) subfolder the layout is `classes`: every
 * subfolder is a class (sorted names, label = index), searched recursively, and files next to the
 * subfolders are skipped. Otherwise the layout is `flat` and every file is unlabeled.
 * Hidden entries (leading dot) are skipped and listed as such; symbolic links are followed, each
 * folder and file once (by real path), and a link looping back to an ancestor is reported.
 */
export function listSource(source: string): SourceListing {
  const root = resolve(source);
  if (!existsSync(root)) throw new Error(`source folder ${root} does not exist`);
  if (!statSync(root).isDirectory()) throw new Error(`source ${root} is not a folder`);
  const { visible, hidden } = folderEntries(root);
  const entries = visible.map((entry) => ({ name: entry.name, info: entryKind(join(root, entry.name)) }));
  const classNames = entries.filter((entry) => entry.info.kind === 'dir').map((entry) => entry.name);
  const listing: SourceListing = { root, layout: classNames.length > 0 ? 'classes' : 'flat', classNames, files: [], skipped: [] };
  const walk: Walk = { listing, folders: new Map(), files: new Map() };
  if (listing.layout === 'flat') {
    collectFiles(walk, root, '', -1, new Set());
  } else {
    // The class folders are claimed first: a link from one class into another does not move its images.
    const realRoot = realpathSync(root);
    walk.folders.set(realRoot, '');
    for (const name of classNames) {
      const real = realpathSync(join(root, name));
      if (!walk.folders.has(real)) walk.folders.set(real, name);
    }
    skipHidden(walk, root, '', hidden);
    for (const { name, info } of entries) {
      if (info.kind === 'file') listing.skipped.push({ path: name, reason: 'outside the class folders' });
      else if (info.kind === 'other') listing.skipped.push({ path: name, reason: info.reason });
    }
    classNames.forEach((name, label) => collectFiles(walk, join(root, name), name, label, new Set([realRoot])));
  }
  listing.files.sort(byRelPath);
  return listing;
}

/** Hash over the relative paths, sizes, mtimes and labels of the files, and the ingest settings. */
export function fingerprintSource(listing: SourceListing, settings: object): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ settings, layout: listing.layout, classNames: listing.classNames }));
  for (const file of listing.files) hash.update(`${file.relPath}\0${file.size}\0${file.mtimeMs}\0${file.label}\n`);
  return hash.digest('hex');
}

/** Runs `task(0..count-1)` with at most `limit` in flight; the first error stops new tasks and is rethrown. */
export async function forEachConcurrent(count: number, limit: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const index = next++;
      try {
        await task(index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, count)) }, worker));
}

export interface IngestCommonOptions {
  /** Folder to ingest (flat, or one subfolder per class). */
  source: string;
  /** Store file to write (reused when the source and settings are unchanged). */
  out: string;
  /** Files decoded at the same time. */
  concurrency?: number;
  /** Called after every file; when absent a progress bar is drawn on stderr. */
  onProgress?: (done: number, total: number) => void;
  /** Receives warnings and the final report (default: stderr). */
  log?: (line: string) => void;
  /** Rebuild even when the cached store matches. */
  rebuild?: boolean;
}

export interface IngestReport {
  kind: 'images' | 'videos';
  source: string;
  out: string;
  layout: SourceLayout;
  classNames: string[];
  /** Candidate files found. */
  found: number;
  /** Files decoded into the store. */
  ingested: number;
  /** Samples in the store (images, or video frames). */
  samples: number;
  /** Ingested files per class name (class-folder layout only). */
  perClass: Record<string, number>;
  /** Every file left out, with the reason. */
  skipped: FileIssue[];
  /** Files that were ingested with a caveat (e.g. an extension that lies about the content). */
  warnings: FileIssue[];
  seconds: number;
}

export interface IngestResult {
  store: SampleStore;
  report: IngestReport;
  /** True when the cached store was returned without decoding anything. */
  reused: boolean;
}

export interface DecodedFile<T> {
  value: T;
  warnings?: string[];
}

/** What the image and video ingests plug into `ingestSource`. */
export interface IngestKind<T> {
  kind: 'images' | 'videos';
  /** Settings that change the decoded result; part of the fingerprint. */
  settings: object;
  concurrency: number;
  /** Runs once the store is known to need building, before any decode (e.g. to choose the size from the files). */
  prepare?(listing: SourceListing, log: (line: string) => void): Promise<void>;
  decode(file: SourceFile): Promise<DecodedFile<T>>;
  /** Builds the store from the decoded values (undefined where a file was skipped). */
  assemble(listing: SourceListing, decoded: (T | undefined)[]): SampleStore;
}

/** The cached store at `out` when its fingerprint matches, else undefined. */
function reusableStore(out: string, fingerprint: string): { store: SampleStore; report: IngestReport } | undefined {
  if (!existsSync(out)) return undefined;
  try {
    const found = loadStoreIf(out, (header) => header.fingerprint === fingerprint);
    return found && { store: found.store, report: found.header.report as IngestReport };
  } catch {
    return undefined; // unreadable or stale format: rebuild
  }
}

const plural = (count: number, noun: string, nouns = `${noun}s`): string => `${count} ${count === 1 ? noun : nouns}`;

/** Human-readable report: totals, counts per class, every skipped file and every warning. */
export function formatReport(report: IngestReport): string {
  const noun = report.kind === 'images' ? 'image' : 'video';
  const lines = [
    `ingested ${report.ingested} of ${plural(report.found, `${noun} file`)} (${report.samples} samples) from ${report.source} ` +
      `in ${report.seconds.toFixed(1)} s -> ${report.out}`,
  ];
  if (report.layout === 'classes') {
    lines.push(
      `  ${plural(report.classNames.length, 'class', 'classes')}: ` +
        report.classNames.map((name) => `${name} ${report.perClass[name] ?? 0}`).join(', '),
    );
  } else {
    lines.push('  flat folder: unlabeled');
  }
  if (report.skipped.length > 0) {
    lines.push(`  skipped ${plural(report.skipped.length, 'file')}:`);
    for (const issue of report.skipped) lines.push(`    ${issue.path}: ${issue.reason}`);
  }
  if (report.warnings.length > 0) {
    lines.push(`  ${plural(report.warnings.length, 'warning')}:`);
    for (const issue of report.warnings) lines.push(`    ${issue.path}: ${issue.reason}`);
  }
  return lines.join('\n');
}

export const defaultConcurrency = (): number => 4 * availableParallelism();

/**
 * Lists `options.source`, returns the cached store when the fingerprint matches, else decodes every
 * file (skipping bad ones with a warning), assembles and writes the store, and logs the report.
 */
export async function ingestSource<T>(options: IngestCommonOptions, kind: IngestKind<T>): Promise<IngestResult> {
  const startedAt = performance.now();
  const out = resolve(options.out);
  checkStoreOutput(out);
  const listing = listSource(options.source);
  listing.files = listing.files.filter((file) => file.path !== out); // a store written inside its source
  const noun = kind.kind === 'images' ? 'image' : 'video';
  if (listing.files.length === 0) throw new Error(`no ${noun} files found in ${listing.root}`);
  const fingerprint = fingerprintSource(listing, { kind: kind.kind, ...kind.settings });

  const progress = options.onProgress ? undefined : new Progress(`ingest ${kind.kind}`, listing.files.length);
  const log = options.log ?? ((line: string) => (progress ? progress.log(line) : process.stderr.write(line + '\n')));
  const cached = options.rebuild ? undefined : reusableStore(out, fingerprint);
  if (cached) {
    const { n, height, width } = cached.store;
    log(`${kind.kind}: reusing ${out} (${n} samples of ${height}x${width}, source unchanged)`);
    return { ...cached, reused: true };
  }

  await kind.prepare?.(listing, log);
  const skipped = [...listing.skipped];
  const warnings: FileIssue[] = [];
  for (const issue of listing.skipped) log(`warning: skipped ${issue.path}: ${issue.reason}`);
  const decoded: (T | undefined)[] = new Array(listing.files.length);
  let done = 0;
  await forEachConcurrent(listing.files.length, kind.concurrency, async (index) => {
    const file = listing.files[index];
    try {
      const result = await kind.decode(file);
      decoded[index] = result.value;
      for (const reason of result.warnings ?? []) {
        warnings.push({ path: file.relPath, reason });
        log(`warning: ${file.relPath}: ${reason}`);
      }
    } catch (error) {
      if (!(error instanceof SkippedFileError)) throw error;
      skipped.push({ path: file.relPath, reason: error.message });
      log(`warning: skipped ${file.relPath}: ${error.message}`);
    }
    done++;
    options.onProgress?.(done, listing.files.length);
    progress?.update(done);
  });
  progress?.finish();

  const byPath = (a: FileIssue, b: FileIssue): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  skipped.sort(byPath);
  warnings.sort(byPath);
  const ingestedFiles = listing.files.filter((_, index) => decoded[index] !== undefined);
  if (ingestedFiles.length === 0) {
    const examples = skipped.slice(0, 3).map((issue) => `${issue.path}: ${issue.reason}`);
    throw new Error(`no decodable ${noun} in ${listing.root}: all ${listing.files.length} files were skipped (${examples.join('; ')})`);
  }
  const store = kind.assemble(listing, decoded);
  store.fingerprint = fingerprint;
  const perClass: Record<string, number> = {};
  if (listing.layout === 'classes') {
    for (const name of listing.classNames) perClass[name] = 0;
    for (const file of ingestedFiles) perClass[listing.classNames[file.label]]++;
    for (const name of listing.classNames.filter((name) => perClass[name] === 0)) {
      const reason = `empty class folder: no ${noun} was ingested, so class '${name}' has 0 samples`;
      warnings.push({ path: name, reason });
      log(`warning: ${name}: ${reason}`);
    }
  }
  const report: IngestReport = {
    kind: kind.kind,
    source: listing.root,
    out,
    layout: listing.layout,
    classNames: listing.classNames,
    found: listing.files.length,
    ingested: ingestedFiles.length,
    samples: store.n,
    perClass,
    skipped,
    warnings,
    seconds: (performance.now() - startedAt) / 1000,
  };
  writeStore(out, store, { fingerprint, report });
  log(formatReport(report));
  return { store, report, reused: false };
}
