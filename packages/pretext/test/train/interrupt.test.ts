// Ctrl-C with NIN-4 (whose steps once kept the signal from ever being seen): a checkpoint is saved
// and the run exits within a step or two; a second Ctrl-C exits at once.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { listCheckpoints } from '../../src/train/checkpoint.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const skip = existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')
  ? false
  : 'Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)';
const root = mkdtempSync(join(tmpdir(), 'pretext-interrupt-'));
after(() => rmSync(root, { recursive: true, force: true }));

const epochs = 50;
const stepsPerEpoch = 8;

/** Starts NIN-4 pretraining, waits for its second step's checkpoint, sends SIGINT `count` times. */
async function interruptRun(out: string, count: number): Promise<{ code: number | null; stderr: string; afterSignalMs: number }> {
  const args = [cli, 'pretrain', '--task', 'rotation', '--data', 'fashion-mnist', '--limit', '256', '--backbone', 'nin4'];
  args.push('--batch-size', '32', '--epochs', String(epochs), '--checkpoint-every', '2', '--threads', '2', '--out', out);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  while (!(listCheckpoints(join(out, 'checkpoints')).at(-1)?.step ?? 0)) {
    if (child.exitCode !== null) assert.fail(`the run ended early: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const signalled = performance.now();
  for (let i = 0; i < count; i++) {
    if (i) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGINT');
  }
  const code = await exited;
  return { code, stderr, afterSignalMs: performance.now() - signalled };
}

test('Ctrl-C during NIN-4 training saves a checkpoint and exits within a step', { skip, timeout: 180_000 }, async () => {
  const out = join(root, 'once');
  const { code, stderr, afterSignalMs } = await interruptRun(out, 1);
  assert.equal(code, 130, stderr);
  assert.match(stderr, /interrupted: saved a checkpoint at step (\d+)/);
  const saved = listCheckpoints(join(out, 'checkpoints')).at(-1)!.step;
  // The signal came right after the step-2 checkpoint; one more step may finish before it is seen.
  assert.ok(saved >= 2 && saved <= 4, `checkpoint at step ${saved} of ${epochs * stepsPerEpoch}`);
  assert.ok(afterSignalMs < 30_000, `exited ${afterSignalMs.toFixed(0)} ms after the signal`);
});

test('a second Ctrl-C exits at once', { skip, timeout: 180_000 }, async () => {
  const out = join(root, 'twice');
  const { code, stderr } = await interruptRun(out, 2);
  assert.equal(code, 130, stderr);
  assert.match(stderr, /SIGINT again: exiting without a checkpoint/);
});
