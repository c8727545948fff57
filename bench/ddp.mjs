// Data-parallel benchmark: NIN-4 at a global batch of 128 (random 32x32 inputs, SGD with Nesterov
// momentum, engine.mjs's recipe) as 2 processes x 1 thread over gloo against 1 process x 2 threads,
// for Pretext (DistributedDataParallel with its gradient allreduce overlapped with backward, and
// reduced after backward) and for PyTorch (its own DistributedDataParallel; bench/ddp.py, Debian
// python3-torch, tcmalloc and channels-last as in engine.mjs). Sides alternate for --rounds rounds;
// each run times --steps steps after 3 of warm-up. Prints median and min-max steps/s per side, the
// ratios per round, and a last JSON line.
// Usage: node bench/ddp.mjs [--rounds 5] [--steps 20]
// (With --worker it is one Pretext process of a side, under RANK/WORLD_SIZE when data-parallel.)
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '@pretext/torch';
import { createBackbone } from 'pretext';

const here = dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    steps: { type: 'string', default: '20' },
    worker: { type: 'boolean', default: false },
    threads: { type: 'string', default: '1' },
    overlap: { type: 'string', default: 'true' },
  },
});
const GLOBAL_BATCH = 128;
const WARMUP = 3;

/** One Pretext process: the whole batch alone, or its share as one rank of DistributedDataParallel. */
async function worker() {
  const { nn, optim, tidy } = torch;
  torch.setNumThreads(Number(opts.threads));
  const env = torch.distributed.launchEnvironment();
  const world = env?.worldSize ?? 1;
  const group = env ? await torch.distributed.initProcessGroup() : undefined;
  torch.manualSeed(0);
  const trunk = createBackbone('nin4');
  const head = new nn.Linear(trunk.outChannels, 10);
  const ddp = group && new torch.distributed.DistributedDataParallel([trunk, head], group, { overlap: opts.overlap === 'true' });
  ddp?.broadcastState();
  const opt = new optim.SGD([...trunk.parameters(), ...head.parameters()], { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  torch.manualSeed((env?.rank ?? 0) + 1);
  const batch = GLOBAL_BATCH / world;
  const pool = Array.from({ length: 4 }, () => [torch.keep(torch.randn([batch, 3, 32, 32])), torch.keep(torch.randint(0, 10, [batch]))]);
  const steps = Number(opts.steps);
  let start = 0;
  for (let step = 0; step < WARMUP + steps; step++) {
    if (step === WARMUP) start = performance.now();
    const [x, y] = pool[step % pool.length];
    tidy(() => {
      opt.zeroGrad();
      nn.functional.crossEntropy(head.forward(trunk.forward(x).mean([2, 3])), y).backward();
      ddp?.syncGradients();
      opt.step();
    });
  }
  const seconds = (performance.now() - start) / 1000;
  const lastSync = ddp?.lastSync;
  ddp?.dispose();
  if (group) torch.distributed.destroyProcessGroup(group);
  console.log(JSON.stringify({ steps_per_s: steps / seconds, steps, world_size: world, threads: Number(opts.threads), lastSync }));
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** Runs `processes` copies of a command (as ranks when more than one); resolves with rank 0's JSON line. */
async function launch(cmd, args, processes, env = {}) {
  const port = await freePort();
  const ranks = Array.from({ length: processes }, (_, rank) => {
    const rankEnv = processes > 1 ? { RANK: rank, WORLD_SIZE: processes, MASTER_ADDR: '127.0.0.1', MASTER_PORT: port } : {};
    const child = spawn(cmd, args, { env: { ...process.env, ...env, ...rankEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    return new Promise((resolve, reject) =>
      child.on('exit', (code) =>
        code === 0 ? resolve(JSON.parse(stdout.trim().split('\n').pop())) : reject(new Error(`${cmd} rank ${rank}: ${stderr}`)),
      ),
    );
  });
  return (await Promise.all(ranks))[0];
}

const pretext =
  (processes, threads, overlap = true) =>
  () =>
    launch(
      process.execPath,
      [fileURLToPath(import.meta.url), '--worker', '--steps', opts.steps, '--threads', String(threads), '--overlap', String(overlap)],
      processes,
    );
const pytorch = (processes, threads) => () =>
  launch('/usr/bin/python3', [join(here, 'ddp.py'), '--steps', opts.steps, '--threads', String(threads)], processes, {
    LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4',
  });

const sides = {
  'pretext 2x1': pretext(2, 1),
  'pretext 2x1 after backward': pretext(2, 1, false),
  'pretext 1x2': pretext(1, 2),
  'pytorch 2x1': pytorch(2, 1),
  'pytorch 1x2': pytorch(1, 2),
};

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const median = (xs) => sorted(xs)[Math.floor(xs.length / 2)];
const spread = (xs) => `median ${median(xs).toFixed(3)} (min ${sorted(xs)[0].toFixed(3)}, max ${sorted(xs).at(-1).toFixed(3)})`;

async function main() {
  const rounds = Number(opts.rounds);
  console.log(`data-parallel benchmark: NIN-4, global batch ${GLOBAL_BATCH}, ${rounds} alternating rounds of ${opts.steps} steps`);
  const speed = Object.fromEntries(Object.keys(sides).map((s) => [s, []]));
  for (let round = 0; round < rounds; round++) {
    for (const [side, run] of Object.entries(sides)) {
      const r = await run();
      speed[side].push(r.steps_per_s);
      const sync = r.lastSync ? `  (last step: ${r.lastSync.overlapped} of ${r.lastSync.buckets} buckets left during backward)` : '';
      console.log(`  round ${round + 1}  ${side.padEnd(27)} ${r.steps_per_s.toFixed(3)} steps/s${sync}`);
    }
  }
  console.log('steps/s (global batch of 128 per step):');
  for (const [side, xs] of Object.entries(speed)) console.log(`  ${side.padEnd(27)} ${spread(xs)}`);
  // Ratios of the same round, so that machine noise cancels where it can.
  const ratio = (a, b) => speed[a].map((x, i) => x / speed[b][i]);
  const ratios = {
    pretext_2x1_vs_1x2: ratio('pretext 2x1', 'pretext 1x2'),
    pytorch_2x1_vs_1x2: ratio('pytorch 2x1', 'pytorch 1x2'),
    pretext_vs_pytorch_2x1: ratio('pretext 2x1', 'pytorch 2x1'),
    pretext_vs_pytorch_1x2: ratio('pretext 1x2', 'pytorch 1x2'),
    pretext_2x1_overlapped_vs_after_backward: ratio('pretext 2x1', 'pretext 2x1 after backward'),
  };
  console.log('ratios of the same round:');
  for (const [name, xs] of Object.entries(ratios)) console.log(`  ${name.padEnd(42)} ${spread(xs)}`);
  const medians = (table) => Object.entries(table).map(([k, xs]) => [k.replaceAll(' ', '_'), +median(xs).toFixed(3)]);
  console.log(JSON.stringify(Object.fromEntries([...medians(speed), ...medians(ratios)])));
}

await (opts.worker ? worker() : main());
