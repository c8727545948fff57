// Temporary folders for tests: /tmp/pretext-<name>-XXXXXX, removed when the test file ends
// (scripts/run-tests.mjs fails the suite on any left behind).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

export function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `pretext-${name}-`));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
