import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpu } from '@pretext/torch';
import { ConfigError, mergeConfig, parseAssignment, readConfigFile } from '../../src/config/schema.js';
import { resolveConfig } from '../../src/train/trainer.js';
import { resolvePrecision } from '../../src/util/precision.js';
import { tempDir } from '../temp.js';

const base = { task: 'rotation', data: 'synthetic', out: '/tmp/x' };

test('task defaults fill in the paper recipe and flags override them', () => {
  const config = resolveConfig({ ...base, epochs: 3 });
  assert.equal(config.backbone, 'nin4');
  assert.equal(config.epochs, 3);
  assert.deepEqual(config.optimizer, { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  assert.deepEqual(config.schedule, { name: 'multistep', milestones: [30, 60, 80], gamma: 0.2 });
  assert.deepEqual(config.taskOptions, { rotations: 4 });
});

test('an invalid value names the field, the value and what is allowed', () => {
  assert.throws(
    () => resolveConfig({ ...base, optimizer: { name: 'sgd', lr: -0.5 } }),
    (e: Error) => e instanceof ConfigError && /field 'optimizer\.lr' = -0\.5/.test(e.message) && />0/.test(e.message),
  );
  assert.throws(() => resolveConfig({ ...base, batchSize: 12.5 }), /field 'batchSize' = 12\.5: .*int/i);
  assert.throws(() => resolveConfig({ ...base, epochs: 'ten' }), /field 'epochs' = "ten"/);
  assert.throws(() => resolveConfig({ ...base, schedule: { name: 'linear' } }), /field 'schedule\.name' = "linear": .*'multistep'/);
  assert.throws(() => resolveConfig({ ...base, lerningRate: 3 }), /unknown key\(s\) 'lerningRate'/);
  assert.throws(() => resolveConfig({ ...base, taskOptions: { rotations: 3 } }), /taskOptions of 'rotation' field 'rotations' = 3/);
});

test('an unknown task or backbone lists the valid ones', () => {
  assert.throws(() => resolveConfig({ ...base, task: 'rotaton' }), /unknown task 'rotaton'; valid tasks: .*rotation/);
  assert.throws(
    () => resolveConfig({ ...base, backbone: 'vgg' }),
    (e: Error) => e instanceof ConfigError && /'backbone' = "vgg".*valid backbones: .*nin4/.test(e.message),
  );
});

test('a new optimizer name replaces the task default instead of merging into it', () => {
  const config = resolveConfig({ ...base, optimizer: { name: 'adam', lr: 1e-3 } });
  assert.deepEqual(config.optimizer, { name: 'adam', lr: 1e-3, betas: [0.9, 0.999], weightDecay: 0 });
  assert.deepEqual(mergeConfig({ a: { x: 1, y: 2 } }, { a: { y: 3 } }), { a: { x: 1, y: 3 } });
});

test('--set assignments parse JSON values and nest keys', () => {
  assert.deepEqual(parseAssignment('optimizer.momentum=0.8'), { optimizer: { momentum: 0.8 } });
  assert.deepEqual(parseAssignment('schedule.milestones=[1,2]'), { schedule: { milestones: [1, 2] } });
  assert.deepEqual(parseAssignment('data=cifar10'), { data: 'cifar10' });
  assert.throws(() => parseAssignment('novalue'), /key\.path=value/);
});

test('config files are read as YAML or JSON, with clear errors', () => {
  const dir = tempDir('config');
  writeFileSync(join(dir, 'a.yaml'), 'task: rotation\nepochs: 2\noptimizer:\n  name: sgd\n  lr: 0.05\n');
  assert.deepEqual(readConfigFile(join(dir, 'a.yaml')), { task: 'rotation', epochs: 2, optimizer: { name: 'sgd', lr: 0.05 } });
  writeFileSync(join(dir, 'b.json'), '{"task": ');
  assert.throws(() => readConfigFile(join(dir, 'b.json')), /b\.json does not parse/);
  assert.throws(() => readConfigFile(join(dir, 'missing.json')), /cannot read config file/);
});

test('a config file extends another through base, its own fields merged over it', () => {
  const dir = tempDir('config-base');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'base.yaml'), 'task: rotation\nepochs: 2\noptimizer: { name: sgd, lr: 0.05, momentum: 0.9 }\nrows: [a, b]\n');
  writeFileSync(join(dir, 'sub', 'run.yaml'), 'base: ../base.yaml\noptimizer: { lr: 0.1 }\nrows: [c]\n');
  assert.deepEqual(readConfigFile(join(dir, 'sub', 'run.yaml')), {
    task: 'rotation',
    epochs: 2,
    optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9 },
    rows: ['c'],
  });
  writeFileSync(join(dir, 'loop.yaml'), 'base: loop.yaml\n');
  assert.throws(() => readConfigFile(join(dir, 'loop.yaml')), /loop\.yaml is its own base/);
  writeFileSync(join(dir, 'odd.yaml'), 'base: 3\n');
  assert.throws(() => readConfigFile(join(dir, 'odd.yaml')), /field 'base' must be a file path, got 3/);
  writeFileSync(join(dir, 'gone.yaml'), 'base: nowhere.yaml\n');
  assert.throws(() => readConfigFile(join(dir, 'gone.yaml')), /cannot read config file .*nowhere\.yaml/);
});

test("precision 'auto' (the default) becomes bf16 on a CPU with native bfloat16 and fp32 elsewhere; explicit settings stay", () => {
  for (const [setting, native, expected] of [
    ['auto', true, 'bf16'],
    ['auto', false, 'fp32'],
    ['fp32', true, 'fp32'],
    ['bf16', false, 'bf16'],
  ] as const) {
    assert.equal(
      resolvePrecision(setting, () => native),
      expected,
      `${setting} with native bf16 ${native}`,
    );
  }
  // The resolved config (and so the run's saved config.json) holds what this machine runs.
  assert.equal(resolveConfig(base).precision, cpu.isBf16Supported() ? 'bf16' : 'fp32');
  assert.equal(resolveConfig({ ...base, precision: 'fp32' }).precision, 'fp32');
  assert.throws(() => resolveConfig({ ...base, precision: 'fp16' }), /field 'precision' = "fp16": .*"auto"/);
});
