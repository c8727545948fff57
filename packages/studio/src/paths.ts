// Names from requests resolved inside the runs folder, never outside it: a run name is one plain
// path segment, and its real path (symlinks followed) must still lie inside the real runs folder.
import { realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { HttpError } from './http.js';

/** A run or file name: one segment of letters, digits, `.`, `_`, `-`, `=`, `+`, `@`, not starting with a dot. */
const SEGMENT = /^[\w=+@-][\w.=+@-]*$/;

/** Whether `child` lies inside `parent` (both real, absolute paths). */
export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && !rel.split(sep).includes('..'));
}

/**
 * Resolves `names` (path segments, each checked) inside `root`; the real path of the result must be
 * inside the real root. Missing paths answer 404, anything that escapes 400.
 */
export function resolveInside(root: string, ...names: string[]): string {
  for (const name of names) {
    if (!SEGMENT.test(name) || name.includes('..')) throw new HttpError(400, `'${name}' is not a valid name`);
  }
  const realRoot = realpathSync(root);
  const path = join(realRoot, ...names);
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    throw new HttpError(404, `'${names.join('/')}' does not exist`);
  }
  if (!isInside(realRoot, real)) throw new HttpError(400, `'${names.join('/')}' points outside the runs folder`);
  return real;
}

export const isDirectory = (path: string): boolean => statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;

/** Absolute form of a folder given on the command line. */
export const absolute = (path: string): string => resolve(path);
