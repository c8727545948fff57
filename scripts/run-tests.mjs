// Runs every compiled test file of the workspaces with node's test runner, one file at a time
// (libtorch already uses both cores inside each test).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function find(dir) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filter = process.argv[2];
const files = ['packages/torch/dist/test', 'packages/pretext/dist/test', 'packages/studio/dist/test']
  .flatMap((d) => {
    try {
      return find(d);
    } catch {
      return [];
    }
  })
  .filter((f) => !filter || f.includes(filter))
  .sort();
if (files.length === 0) {
  console.error('no compiled tests found: run `npm run build` first');
  process.exit(1);
}
// The tests run with a private TMPDIR, so that whatever is in it afterwards was left there by a test
// (other processes on the machine write to /tmp too): each must remove its temporary folders.
const tmp = mkdtempSync(join(tmpdir(), 'pretext-tests-'));
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], {
  stdio: 'inherit',
  env: { ...process.env, TMPDIR: tmp },
});
const leftovers = readdirSync(tmp);
rmSync(tmp, { recursive: true, force: true });
if (leftovers.length > 0) {
  console.error(`\nthe tests left ${leftovers.length} temporary folder(s) behind (now removed): ${leftovers.join(', ')}`);
  process.exit(r.status || 1);
}
process.exit(r.status ?? 1);
