// Where datasets and caches live.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Cache folder for unpacked datasets and ingested stores: $PRETEXT_DATA or ~/.cache/pretext-data. */
export function dataCacheDir(): string {
  return process.env.PRETEXT_DATA || join(homedir(), '.cache', 'pretext-data');
}

function isWorkspaceRoot(dir: string): boolean {
  const manifest = join(dir, 'package.json');
  if (!existsSync(manifest)) return false;
  try {
    return 'workspaces' in (JSON.parse(readFileSync(manifest, 'utf8')) as object);
  } catch {
    return false;
  }
}

/** The monorepo root: the nearest folder above this module (or the cwd) whose package.json has workspaces. */
export function repoRoot(): string {
  for (const start of [dirname(fileURLToPath(import.meta.url)), process.cwd()]) {
    for (let dir = start; ; dir = dirname(dir)) {
      if (isWorkspaceRoot(dir)) return dir;
      if (dirname(dir) === dir) break;
    }
  }
  return process.cwd();
}

/** Shared read-only datasets next to the repository: `<repo>/../shared/datasets`. */
export function sharedDatasetsDir(): string {
  return resolve(repoRoot(), '..', 'shared', 'datasets');
}
