import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as torch from '@pretext/torch';
import { nn, optim } from '@pretext/torch';
import { listCheckpoints, loadCheckpoint, pruneCheckpoints, saveCheckpoint } from '../../src/train/checkpoint.js';
import { tempDir } from '../temp.js';

function setup() {
  torch.manualSeed(1);
  const model = new nn.Sequential(new nn.Linear(4, 8), new nn.BatchNorm1d(8), nn.ReLU(), new nn.Linear(8, 2));
  const opt = new optim.Adam(model.parameters(), { lr: 0.01 });
  const scheduler = new optim.MultiStepLR(opt, [2], 0.5);
  return { model, opt, scheduler };
}

function trainSteps(s: ReturnType<typeof setup>, n: number) {
  for (let i = 0; i < n; i++) {
    torch.tidy(() => {
      s.opt.zeroGrad();
      s.model
        .forward(torch.randn([16, 4]))
        .square()
        .mean()
        .backward();
      s.opt.step();
      s.scheduler.step();
    });
  }
}

test('a checkpoint restores modules, optimizer state, scheduler and RNG state', () => {
  const dir = tempDir('ckpt');
  const a = setup();
  trainSteps(a, 3);
  const gen = new torch.Generator(5);
  saveCheckpoint(dir, {
    step: 3,
    epoch: 0,
    batch: 3,
    modules: { model: a.model },
    optimizers: { main: a.opt },
    schedulers: { main: a.scheduler },
    rng: { task: gen.getState() },
    info: { note: 'x' },
  });
  const expectedNext = torch.randn([3], gen).toArray();

  const b = setup();
  trainSteps(b, 1);
  const restored = loadCheckpoint(join(dir, 'ckpt-000000003.json'), {
    modules: { model: b.model },
    optimizers: { main: b.opt },
    schedulers: { main: b.scheduler },
  });
  assert.equal(restored.step, 3);
  assert.deepEqual(restored.info, { note: 'x' });
  assert.equal(b.opt.lr, a.opt.lr);
  assert.equal(b.scheduler.lastStep, 3);
  const gen2 = new torch.Generator(0).setState(restored.rng.task);
  assert.deepEqual(torch.randn([3], gen2).toArray(), expectedNext);
  for (const [k, t] of a.model.stateDict()) assert.ok(t.equal(b.model.stateDict().get(k)!), k);
  // Continuing both gives the same updates (the Adam moments and step counts came back).
  torch.manualSeed(9);
  trainSteps(a, 2);
  torch.manualSeed(9);
  trainSteps(b, 2);
  for (const [k, t] of a.model.stateDict()) assert.ok(t.allclose(b.model.stateDict().get(k)!, 0, 0), `${k} after continuing`);
});

test('keeps the last K checkpoints, and a missing module key names the file', () => {
  const dir = tempDir('prune');
  const a = setup();
  const state = { epoch: 0, batch: 0, modules: { model: a.model }, optimizers: { main: a.opt }, schedulers: {}, rng: {}, info: {} };
  for (const step of [1, 2, 3, 4, 5]) saveCheckpoint(dir, { ...state, step });
  pruneCheckpoints(dir, 2);
  assert.deepEqual(
    listCheckpoints(dir).map((c) => c.step),
    [4, 5],
  );
  assert.throws(
    () => loadCheckpoint(join(dir, 'ckpt-000000005.json'), { modules: { other: new nn.Linear(4, 8) }, optimizers: {}, schedulers: {} }),
    /ckpt-000000005\.json, module 'other': .*missing keys: weight, bias/,
  );
});

// A child process that writes a large checkpoint over and over, to be killed mid-write.
const writerScript = `
import * as torch from '@pretext/torch';
import { saveCheckpoint } from ${JSON.stringify(fileURLToPath(new URL('../../src/train/checkpoint.js', import.meta.url)))};
const m = new torch.nn.Linear(2048, 2048);
for (let step = 1; ; step++) {
  torch.noGrad(() => m.weight.fill_(step));
  saveCheckpoint(process.argv[2], { step, epoch: 0, batch: 0, modules: { m }, optimizers: {}, schedulers: {}, rng: {}, info: {} });
  if (step === 2) console.log('ready');
}
`;

test('a checkpoint write killed half-way never corrupts the previous checkpoint', { timeout: 60_000 }, async () => {
  const dir = tempDir('atomic');
  const script = join(fileURLToPath(new URL('.', import.meta.url)), `writer-${process.pid}.mjs`);
  writeFileSync(script, writerScript);
  for (const delay of [0, 7, 23, 41]) {
    const ckpt = join(dir, `run-${delay}`);
    const child = spawn(process.execPath, [script, ckpt], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, delay));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const listed = listCheckpoints(ckpt);
    assert.ok(listed.length >= 2, `checkpoints present after kill at +${delay} ms`);
    // Every checkpoint that counts as written loads, and holds the values of its own step.
    for (const c of listed) {
      const m = new nn.Linear(2048, 2048);
      loadCheckpoint(c.sidecar, { modules: { m }, optimizers: {}, schedulers: {} });
      assert.equal(m.weight.mean().item(), c.step);
    }
    assert.ok(readdirSync(ckpt).every((f) => !f.endsWith('.json') || listed.some((c) => c.sidecar.endsWith(f)) || f.endsWith('.tmp')));
  }
});
