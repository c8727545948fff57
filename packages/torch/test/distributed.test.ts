// torch.distributed over c10d's TCPStore and ProcessGroupGloo, with ranks as real processes on
// the loopback: collectives give the right values on every rank, c10d's errors are exceptions, and
// DistributedDataParallel over 2 ranks trains exactly as one process on the whole batch.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/index.js';

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

async function runRanks(scenario: string, world: number): Promise<Record<string, unknown>[]> {
  const port = await freePort();
  const ranks = Array.from({ length: world }, (_, rank) => {
    const env = { ...process.env, RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
    const child = spawn(process.execPath, [worker, scenario], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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

test('DistributedDataParallel on 2 ranks matches one process on the whole batch', { timeout: 60_000 }, async () => {
  const [a, b] = await runRanks('ddp', 2);
  assert.deepEqual(a.weights, b.weights, 'the ranks stay in sync');
  // One process: rank 0's initial weights, the whole batch (the mean loss over 8 = the mean of the two halves' means).
  torch.manualSeed(100);
  const model = new torch.nn.Sequential(new torch.nn.Linear(3, 4), torch.nn.ReLU(), new torch.nn.Linear(4, 2));
  const opt = new torch.optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
  torch.manualSeed(7);
  const x = torch.randn([8, 3]);
  const y = torch.randn([8, 2]);
  for (let step = 0; step < 3; step++) {
    opt.zeroGrad();
    torch.nn.functional.mseLoss(model.forward(x), y).backward();
    opt.step();
  }
  const single = model
    .parameters()
    .map((p) => p.toArray())
    .flat(2) as number[];
  const parallel = (a.weights as number[][]).flat(2) as number[];
  assert.equal(parallel.length, single.length);
  for (let i = 0; i < single.length; i++)
    assert.ok(Math.abs(single[i] - parallel[i]) < 1e-6, `weight ${i}: ${single[i]} vs ${parallel[i]}`);
});

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
