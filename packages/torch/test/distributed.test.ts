// torch.distributed over c10d's TCPStore and ProcessGroupGloo, with ranks as real processes on
// the loopback: collectives give the right values on every rank, c10d's errors are exceptions,
// DistributedDataParallel over 2 ranks trains exactly as one process on the whole batch (gradients
// reduced during backward or after it), and so does a BatchNorm model converted to SyncBatchNorm.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/index.js';
import { makeData, makeModel, stateOf, train } from './distributed-models.js';

const worker = fileURLToPath(new URL('./distributed-worker.js', import.meta.url));

/** A port the OS says is free now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function runRanks(scenario: string, world: number, ...args: string[]): Promise<Record<string, unknown>[]> {
  const port = await freePort();
  const ranks = Array.from({ length: world }, (_, rank) => {
    const env = { ...process.env, RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
    const child = spawn(process.execPath, [worker, scenario, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    return new Promise<Record<string, unknown>>((resolve, reject) =>
      child.on('exit', (code) =>
        code === 0 ? resolve(JSON.parse(stdout.trim().split('\n').pop()!)) : reject(new Error(`rank ${rank}: ${stderr}`)),
      ),
    );
  });
  return Promise.all(ranks);
}

test('allReduce, broadcast, allGather and barrier across 3 processes', { timeout: 60_000 }, async () => {
  const results = await runRanks('collectives', 3);
  for (const r of results) {
    assert.deepEqual(r.sum, [6, 60]);
    assert.deepEqual(r.max, [2]);
    assert.deepEqual(r.broadcast, [42, 1]);
    assert.deepEqual(r.gathered, [
      [0, 0],
      [1, 1],
      [2, 4],
    ]);
    assert.match(String(r.badOp), /allReduce: argument 'op' .*median/);
  }
});

/** The state after the same recipe in one process on the whole batch, with plain BatchNorm. */
function trainedAlone(batchNorm: boolean): Record<string, unknown> {
  const model = makeModel(batchNorm);
  train(model, makeData(batchNorm), (t) => t, { noSync: (fn) => fn(), syncGradients: () => {} });
  return stateOf(model);
}

function assertClose(actual: Record<string, unknown>, expected: Record<string, unknown>, tolerance: number): void {
  assert.deepEqual(Object.keys(actual), Object.keys(expected));
  for (const key of Object.keys(expected)) {
    const a = [actual[key]].flat(4) as number[];
    const e = [expected[key]].flat(4) as number[];
    assert.equal(a.length, e.length, key);
    for (let i = 0; i < e.length; i++) assert.ok(Math.abs(a[i] - e[i]) <= tolerance, `${key}[${i}]: ${a[i]} vs ${e[i]}`);
  }
}

for (const mode of ['overlap', 'after'] as const) {
  test(
    `DistributedDataParallel on 2 ranks (${mode} backward) matches one process on the whole batch, noSync included`,
    { timeout: 60_000 },
    async () => {
      const [a, b] = await runRanks('ddp', 2, mode);
      assert.deepEqual(a.state, b.state, 'the ranks stay in sync');
      // The mean loss over 8 is the mean of the two halves' means.
      assertClose(a.state as Record<string, unknown>, trainedAlone(false), 1e-6);
      // Four parameters, a bucket each: with hooks, every bucket left during backward.
      assert.deepEqual(a.lastSync, { buckets: 4, overlapped: mode === 'overlap' ? 4 : 0 });
    },
  );
}

test(
  'SyncBatchNorm on 2 ranks at batch 4 matches BatchNorm in one process at batch 8: weights and running stats',
  { timeout: 60_000 },
  async () => {
    const [a, b] = await runRanks('syncbn', 2);
    assert.deepEqual(a.state, b.state, 'the ranks stay in sync, running statistics included');
    assertClose(a.state as Record<string, unknown>, trainedAlone(true), 1e-5);
  },
);

test('convertSyncBatchnorm replaces BatchNorm layers in place, keeping their tensors and state-dict keys', () => {
  const model = makeModel(true);
  model.eval();
  const before = model.stateDict();
  const converted = torch.nn.SyncBatchNorm.convertSyncBatchnorm(model);
  assert.equal(converted, model);
  assert.ok(
    model[1] instanceof torch.nn.SyncBatchNorm && model[4] instanceof torch.nn.SyncBatchNorm && model[9] instanceof torch.nn.SyncBatchNorm,
  );
  assert.equal((model[4] as torch.nn.SyncBatchNorm).momentum, 0.3);
  assert.equal(model[4].training, false);
  const after = model.stateDict();
  assert.deepEqual([...after.keys()], [...before.keys()]);
  for (const [k, t] of before) assert.equal(after.get(k), t, k);
  // A BatchNorm alone is returned replaced; without a process group it normalizes as BatchNorm.
  const bn = new torch.nn.BatchNorm2d(3);
  const sync = torch.nn.SyncBatchNorm.convertSyncBatchnorm(bn);
  assert.ok(sync instanceof torch.nn.SyncBatchNorm);
  const x = torch.randn([4, 3, 2, 2]);
  assert.deepEqual(sync.forward(x).toArray(), new torch.nn.BatchNorm2d(3).forward(x).toArray());
  assert.deepEqual(bn.runningMean!.toArray(), sync.runningMean!.toArray());
});

test(
  'syncBatchNorm in a world of one is batch norm: outputs, gradients, running stats, finite differences',
  { timeout: 60_000 },
  async () => {
    const group = await torch.distributed.initProcessGroup({ rank: 0, worldSize: 1, masterPort: await freePort(), timeoutMs: 10_000 });
    try {
      const F = torch.nn.functional;
      torch.manualSeed(3);
      const x = torch.randn([4, 3, 5, 5]).mul(2).add(1).channelsLast().requiresGrad_(true);
      const weight = torch.randn([3]).requiresGrad_(true);
      const bias = torch.randn([3]).requiresGrad_(true);
      const upstream = torch.randn([4, 3, 5, 5]);
      const run = (norm: (mean: torch.Tensor, variance: torch.Tensor) => torch.Tensor) => {
        const [mean, variance] = [torch.zeros([3]), torch.ones([3])];
        const y = norm(mean, variance);
        return [y, ...torch.autograd.grad(y.mul(upstream).sum(), [x, weight, bias]), mean, variance] as torch.Tensor[];
      };
      const plain = run((mean, variance) => F.batchNorm(x, mean, variance, { weight, bias, training: true, momentum: 0.2 }));
      const sync = run((mean, variance) => torch.distributed.syncBatchNorm(x, mean, variance, { weight, bias, momentum: 0.2 }, group));
      const names = ['output', 'input grad', 'weight grad', 'bias grad', 'running mean', 'running var'];
      plain.forEach((t, i) => assert.ok(t.sub(sync[i]).abs().max().item() < 1e-5, names[i]));

      const double = (shape: number[]) => torch.randn(shape).toDtype('float64').requiresGrad_(true);
      const affine = (xd: torch.Tensor, w: torch.Tensor, b: torch.Tensor) =>
        torch.distributed.syncBatchNorm(xd, undefined, undefined, { weight: w, bias: b }, group);
      assert.ok(torch.testing.gradcheck(affine, [double([3, 2, 2, 3]), double([2]), double([2])]).ok);
      assert.ok(torch.testing.gradcheck((xd) => torch.distributed.syncBatchNorm(xd, undefined, undefined, {}, group), [double([5, 3])]).ok);

      assert.throws(
        () => torch.distributed.syncBatchNorm(torch.randn([1, 3]), undefined, undefined, {}, group),
        /more than 1 value per channel/,
      );
      // A collective that fails inside backward (the group is gone) is an exception, not a crash.
      const y = torch.distributed.syncBatchNorm(x, undefined, undefined, { weight, bias }, group);
      torch.distributed.destroyProcessGroup(group);
      assert.throws(() => y.sum().backward(), /no such process group/);
    } finally {
      if (torch.distributed.isInitialized()) torch.distributed.destroyProcessGroup(group);
    }
  },
);

test("a rendezvous nobody joins fails with c10d's timeout as an exception", { timeout: 60_000 }, async () => {
  const port = await freePort();
  await assert.rejects(
    torch.distributed.initProcessGroup({ rank: 1, worldSize: 2, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 1500 }),
    /initProcessGroup: .*timed out .*127\.0\.0\.1/,
  );
  assert.throws(() => torch.distributed.getRank(), /no process group/);
});

/** Two "hosts": network namespaces joined by a veth pair, made (and removed) by the test; needs root and iproute2. */
const netnsSkip = (() => {
  if (process.getuid?.() !== 0) return 'needs root for ip netns';
  try {
    execFileSync('ip', ['netns', 'list']);
    return false;
  } catch {
    return 'iproute2 (ip netns) is not available';
  }
})();

test('ranks on two network namespaces rendezvous across a veth pair', { skip: netnsSkip, timeout: 60_000 }, async () => {
  const tag = `pt${process.pid % 100000}`;
  const hosts = [`${tag}a`, `${tag}b`];
  const ip = (...args: string[]) => execFileSync('ip', args);
  try {
    for (const h of hosts) ip('netns', 'add', h);
    ip('link', 'add', `${tag}va`, 'type', 'veth', 'peer', 'name', `${tag}vb`);
    hosts.forEach((h, i) => {
      const dev = `${tag}v${'ab'[i]}`;
      ip('link', 'set', dev, 'netns', h);
      ip('-n', h, 'addr', 'add', `10.231.${process.pid % 250}.${i + 1}/24`, 'dev', dev);
      ip('-n', h, 'link', 'set', dev, 'up');
      ip('-n', h, 'link', 'set', 'lo', 'up');
    });
    const master = `10.231.${process.pid % 250}.1`;
    const results = await Promise.all(
      hosts.map((h, rank) => {
        const env = {
          ...process.env,
          RANK: String(rank),
          WORLD_SIZE: '2',
          MASTER_ADDR: master,
          MASTER_PORT: '29533',
          GLOO_SOCKET_IFNAME: `${tag}v${'ab'[rank]}`,
        };
        const child = spawn('ip', ['netns', 'exec', h, process.execPath, worker, 'collectives'], {
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        return new Promise<Record<string, unknown>>((resolve, reject) =>
          child.on('exit', (code) =>
            code === 0 ? resolve(JSON.parse(stdout.trim().split('\n').pop()!)) : reject(new Error(`${h}: ${stderr}`)),
          ),
        );
      }),
    );
    for (const r of results) assert.deepEqual(r.sum, [3, 30]);
  } finally {
    for (const h of hosts) spawnSync('ip', ['netns', 'del', h]);
  }
});
