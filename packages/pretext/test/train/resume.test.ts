// A run killed with SIGKILL (or stopped with Ctrl-C) and resumed ends with exactly the weights of
// an uninterrupted run, in deterministic mode.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { safetensors } from '@pretext/torch';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { tempDir } from '../temp.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const hasFashionMnist = existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz');
const skip = hasFashionMnist ? false : 'Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)';

// 6 steps an epoch; enough epochs that a signal sent after step 4 lands well before the end
// even on a fast, idle machine.
const epochs = 6;
const totalSteps = 6 * epochs;

/** A task's own flags; the rest of a run's command line is common to every case. */
const rotation = ['--task', 'rotation', '--backbone', 'resnet18-small', '--lr', '0.05'];
// Epoch-start work over the whole store (features, PCA, k-means, a re-initialized head) and task
// state in the checkpoint: the resumed epoch must cluster exactly as the uninterrupted one did.
const deepcluster = [
  ...['--task', 'deepcluster', '--backbone', 'resnet18-small', '--lr', '0.05'],
  ...['--set', 'taskOptions.k=8', '--set', 'taskOptions.pcaDim=16', '--set', 'taskOptions.restarts=2'],
];
// Two Adam phases (generator, discriminator) after a one-epoch MSE warm-up: a kill after step 8
// lands in the adversarial part.
const superres = [
  ...['--task', 'superres', '--backbone', 'srresnet-small'],
  ...['--set', 'taskOptions.warmupEpochs=1', '--set', 'taskOptions.discriminatorWidth=16'],
];

const args = (out: string, task: string[] = rotation) => [
  cli,
  'pretrain',
  ...task,
  '--data',
  'fashion-mnist',
  '--limit',
  '192',
  '--batch-size',
  '32',
  '--epochs',
  String(epochs),
  '--checkpoint-every',
  '2',
  '--keep-last',
  '20',
  // One thread: exactness does not depend on it, and two spinning threads slow 5x when another process holds a core.
  '--threads',
  '1',
  '--deterministic',
  '--out',
  out,
];

function runToEnd(out: string, resume = false, task = rotation): void {
  const r = spawnSync(process.execPath, [...args(out, task), ...(resume ? ['--resume'] : [])], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** Starts a run and sends `signal` once a checkpoint at or past `afterStep` exists. */
/** `pretext pretrain --resume --out DIR` alone: the run's saved config supplies everything else. */
function resumeFromSavedConfig(out: string): void {
  const r = spawnSync(process.execPath, [cli, 'pretrain', '--resume', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

async function interrupt(out: string, signal: NodeJS.Signals, afterStep: number, delayMs: number, task = rotation): Promise<number | null> {
  const child = spawn(process.execPath, args(out, task), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (;;) {
    const latest = listCheckpoints(join(out, 'checkpoints')).at(-1);
    if (latest && latest.step >= afterStep) break;
    if (child.exitCode !== null) assert.fail(`run ended before step ${afterStep}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, delayMs));
  child.kill(signal);
  return exited;
}

function finalTensors(out: string): Map<string, Buffer> {
  const last = listCheckpoints(join(out, 'checkpoints')).at(-1)!;
  const { tensors } = safetensors.load(join(out, 'checkpoints', `${last.name}.safetensors`));
  return new Map([...tensors].filter(([k]) => !k.startsWith('rng.')).map(([k, t]) => [k, Buffer.from(t.toTypedArray().buffer)]));
}

function assertSameWeights(a: string, b: string, prefixes = ['model.backbone.']): void {
  const ta = finalTensors(a);
  const tb = finalTensors(b);
  assert.deepEqual([...tb.keys()].sort(), [...ta.keys()].sort());
  for (const prefix of prefixes)
    assert.ok(
      [...ta.keys()].some((k) => k.startsWith(prefix)),
      `no tensor under ${prefix}`,
    );
  for (const [k, v] of ta) assert.ok(v.equals(tb.get(k)!), `tensor ${k} differs after resume`);
}

test('SIGKILL at arbitrary points then --resume reproduces the uninterrupted weights exactly', { skip, timeout: 240_000 }, async () => {
  const root = tempDir('resume');
  const reference = join(root, 'reference');
  runToEnd(reference);
  assert.equal(listCheckpoints(join(reference, 'checkpoints')).at(-1)!.step, totalSteps);
  for (const [i, [afterStep, delay]] of [
    [3, 0],
    [8, 150],
  ].entries()) {
    const killed = join(root, `killed-${i}`);
    await interrupt(killed, 'SIGKILL', afterStep, delay);
    const before = listCheckpoints(join(killed, 'checkpoints')).at(-1)!.step;
    assert.ok(before < totalSteps, 'the kill landed before the end');
    runToEnd(killed, true);
    assertSameWeights(reference, killed);
  }
});

test('Ctrl-C saves a checkpoint and exits cleanly; --resume finishes the run', { skip, timeout: 240_000 }, async () => {
  const root = tempDir('sigint');
  const reference = join(root, 'reference');
  runToEnd(reference);
  const stopped = join(root, 'stopped');
  const code = await interrupt(stopped, 'SIGINT', 4, 0);
  assert.equal(code, 130);
  const saved = listCheckpoints(join(stopped, 'checkpoints')).at(-1)!.step;
  assert.ok(saved >= 4 && saved < totalSteps);
  resumeFromSavedConfig(stopped);
  assertSameWeights(reference, stopped);
});

for (const [name, task, afterStep, prefixes] of [
  ['DeepCluster', deepcluster, 8, ['model.backbone.', 'task.']],
  ['super-resolution (GAN phases)', superres, 8, ['model.backbone.', 'optim.discriminator.']],
] as const) {
  test(
    `${name}: SIGKILL mid-run then --resume reproduces the uninterrupted weights and task state`,
    { skip, timeout: 300_000 },
    async () => {
      const root = tempDir('resume-task');
      const reference = join(root, 'reference');
      runToEnd(reference, false, [...task]);
      const killed = join(root, 'killed');
      await interrupt(killed, 'SIGKILL', afterStep, 100, [...task]);
      const before = listCheckpoints(join(killed, 'checkpoints')).at(-1)!.step;
      assert.ok(before >= afterStep && before < totalSteps, `the kill landed mid-run (step ${before})`);
      runToEnd(killed, true, [...task]);
      assertSameWeights(reference, killed, [...prefixes]);
    },
  );
}
