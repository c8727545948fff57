// Output files written whole or not at all: a temporary file beside the target, fsync, rename.
// The checks run before any byte is written, so a bad path fails at once, never replaces a device,
// a folder or a link's target of another kind, and leaves no temporary file behind.
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** Largest single write; keeps each syscall well below the 2 GiB limit. */
const IO_CHUNK = 1 << 30;

/** The temporary file that writeFileAtomic writes before renaming it over `path`. */
export function atomicTempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
}

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a folder';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isFIFO()) return 'a named pipe';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

const reason = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

/**
 * Creates `dir` and its missing parents, as `mkdir -p`. Node's recursive mkdir retries forever
 * where a parent exists but refuses children (under /proc); here each level is made once and an
 * error names the folder that could not be made.
 */
export function makeDirectory(dir: string): void {
  const missing: string[] = [];
  let existing = resolve(dir);
  while (!existsSync(existing) && dirname(existing) !== existing) {
    missing.push(existing);
    existing = dirname(existing);
  }
  if (!statSync(existing).isDirectory()) throw new Error(`cannot create folder ${dir}: ${existing} is not a folder`);
  for (const folder of missing.reverse()) {
    try {
      mkdirSync(folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST' && statSync(folder, { throwIfNoEntry: false })?.isDirectory()) continue;
      throw new Error(`cannot create folder ${folder} (${reason(error)})`);
    }
  }
}

/**
 * Checks that `path` may be written as a regular file and makes its folder. Returns the file to
 * write: `path`, or the target of a symbolic link to a regular file (the link stays a link).
 * Throws, writing nothing, when `path` is a folder, a device, a pipe or a socket, or a broken link.
 */
export function prepareOutputFile(path: string): string {
  let target = path;
  let stats = lstatSync(path, { throwIfNoEntry: false });
  if (stats?.isSymbolicLink()) {
    try {
      target = realpathSync(path);
    } catch (error) {
      throw new Error(`cannot write ${path}: it is a symbolic link that leads nowhere (${reason(error)})`);
    }
    stats = statSync(target);
  }
  if (stats && !stats.isFile()) throw new Error(`refusing to write ${path}: it is ${kindOf(stats)}, not a regular file`);
  makeDirectory(dirname(target));
  return target;
}

/** Writes all of `bytes` at `position` of an open file. */
export function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length;) {
    const chunk = bytes.subarray(done, Math.min(bytes.length, done + IO_CHUNK));
    done += writeSync(fd, chunk, 0, chunk.length, position + done);
  }
}

/** Makes a rename durable; not every filesystem allows fsync on a directory. */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort
  }
}

/**
 * Writes a file atomically: `data`, or whatever `data(fd)` writes through the descriptor (positional
 * writes, ftruncate), goes into a temporary file beside the target, which is fsynced and renamed
 * over it. Readers see the old file or the new one, never a partial one; on any error the
 * temporary file is removed and the old file is left as it was. See `prepareOutputFile` for the
 * paths refused.
 */
export function writeFileAtomic(path: string, data: Uint8Array | ((fd: number) => void)): void {
  const target = prepareOutputFile(path);
  const tmp = atomicTempPath(target);
  try {
    const fd = openSync(tmp, 'w');
    try {
      if (typeof data === 'function') data(fd);
      else writeFully(fd, data, 0);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
  syncDirectory(dirname(target));
}
