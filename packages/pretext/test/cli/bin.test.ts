// The `pretext` command as a user runs it: `npx pretext ...` in the repository root after setup
// (npm links the workspace's bin because the root package depends on it), and the bin file itself
// (what `npm link -w pretext` puts on PATH), in child processes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../../../../', import.meta.url));
const manifest = JSON.parse(readFileSync(join(repo, 'packages/pretext/package.json'), 'utf8')) as { bin: Record<string, string> };
const bin = join(repo, 'packages/pretext', manifest.bin.pretext);

const run = (command: string, args: string[]) => spawnSync(command, args, { cwd: repo, encoding: 'utf8', timeout: 60_000 });

test('npx pretext works from the repository root after setup', () => {
  const root = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  assert.ok(root.devDependencies.pretext, 'the root package depends on the pretext workspace, so that npm links its bin');
  const link = join(repo, 'node_modules/.bin/pretext');
  assert.equal(realpathSync(link), realpathSync(bin), `${link} is the workspace's bin (run npm ci to link it)`);
  const tasks = run('npx', ['--no-install', 'pretext', 'tasks']);
  assert.equal(tasks.status, 0, tasks.stderr);
  assert.match(tasks.stdout, /^rotation +RotNet/m);
});

test('the bin is an executable node script that runs every command', () => {
  assert.ok(statSync(bin).mode & 0o111, 'executable, as npm link needs');
  assert.match(readFileSync(bin, 'utf8'), /^#!\/usr\/bin\/env node\n/);
  const help = run(bin, ['--help']);
  assert.equal(help.status, 0);
  for (const command of ['pretrain', 'embed', 'eval', 'export', 'ingest', 'tasks'])
    assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'));
  assert.match(run(bin, ['embed', '--help']).stdout, /--split train\|test +which split to embed \(default train\)/);
  assert.match(run(bin, ['ingest', '--help']).stdout, /--rebuild/);
  const wrong = run(bin, ['ingest', 'somewhere', '--out', 'x.pxs', '--video', '--max-frames', '2.5']);
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /--max-frames must be a whole number of at least 1, got '2\.5'/);
  const unknown = run(bin, ['pretrian']);
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /unknown command 'pretrian'/);
});
