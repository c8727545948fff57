// Atomic output files: paths that cannot hold a file fail at once with a clear error, nothing but a
// regular file is ever replaced, and no temporary file is left behind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeDirectory, writeFileAtomic, writeFully } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'pretext-atomic-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const temporaries = (folder: string) => readdirSync(folder).filter((name) => name.endsWith('.tmp'));

test(
  'a folder that cannot be made under /proc fails at once, naming it (no mkdir retry loop)',
  { skip: process.platform !== 'linux' },
  () => {
    const atomic = fileURLToPath(new URL('../src/io/atomic.js', import.meta.url));
    const script = `import(${JSON.stringify(atomic)}).then((m) => { try { m.writeFileAtomic('/proc/nope/x.pxs', new Uint8Array(4)); } catch (e) { console.log(e.message); } })`;
    const started = performance.now();
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(child.signal, null, 'the write hung');
    assert.match(child.stdout, /cannot create folder \/proc\/nope \(ENOENT\)/);
    assert.ok(performance.now() - started < 10_000);
  },
);

test('devices, folders and broken links are refused before anything is written', { skip: process.platform !== 'linux' }, () => {
  assert.throws(() => writeFileAtomic('/dev/full', new Uint8Array(4)), /refusing to write \/dev\/full: it is a character device/);
  assert.ok(statSync('/dev/full').isCharacterDevice());
  assert.deepEqual(temporaries('/dev'), []);

  const folder = join(dir, 'existing-folder');
  mkdirSync(folder);
  assert.throws(() => writeFileAtomic(folder, new Uint8Array(4)), /it is a folder, not a regular file/);
  assert.ok(statSync(folder).isDirectory());
  assert.deepEqual(temporaries(dir), []);

  const broken = join(dir, 'broken-link');
  symlinkSync(join(dir, 'nowhere', 'x'), broken);
  assert.throws(() => writeFileAtomic(broken, new Uint8Array(4)), /symbolic link that leads nowhere/);

  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  assert.throws(() => makeDirectory(join(file, 'sub')), /is not a folder/);
});

test('a link to a regular file writes the file and stays a link; missing folders are made', () => {
  const target = join(dir, 'real.bin');
  writeFileSync(target, 'old');
  const link = join(dir, 'link.bin');
  symlinkSync(target, link);
  writeFileAtomic(link, Buffer.from('new'));
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.equal(readlinkSync(link), target);
  assert.equal(readFileSync(target, 'utf8'), 'new');

  const nested = join(dir, 'a', 'b', 'c.bin');
  writeFileAtomic(nested, Buffer.from('deep'));
  assert.equal(readFileSync(nested, 'utf8'), 'deep');
});

test('the streaming form writes through the descriptor; an error inside keeps the old file and removes the temporary', () => {
  const path = join(dir, 'stream.bin');
  writeFileAtomic(path, (fd) => {
    writeFully(fd, Buffer.from('tail'), 4);
    writeFully(fd, Buffer.from('head'), 0);
  });
  assert.equal(readFileSync(path, 'utf8'), 'headtail');
  assert.throws(
    () =>
      writeFileAtomic(path, (fd) => {
        writeFully(fd, Buffer.from('partial'), 0);
        throw new Error('disk on fire');
      }),
    /disk on fire/,
  );
  assert.equal(readFileSync(path, 'utf8'), 'headtail');
  assert.deepEqual(temporaries(dir), []);
});
