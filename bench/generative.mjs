// Generative benchmark: one SRGAN generator training step (SRResNet-16, width 64, x2 sub-pixel
// upsampling, MSE, Adam) in Pretext against plain PyTorch (bench/generative.py), in alternating
// rounds so that machine noise hits every side. PyTorch runs tuned (tcmalloc), NCHW and
// channels-last (Pretext's Conv2d layout). `--side pretext` runs Pretext's side alone.
// Last line: {"ratio", "ratio_channels_last", "pretext", "pytorch", "pytorch_channels_last"} (medians in images/s).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    side: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    batch: { type: 'string', default: '16' },
    size: { type: 'string', default: '32' },
    scale: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '2' },
    'min-steps': { type: 'string', default: '5' },
    'min-seconds': { type: 'string', default: '5' },
    threads: { type: 'string', default: execFileSync('nproc').toString().trim() },
  },
});
const python = '/usr/bin/python3';
const tcmalloc = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';
const shared = ['batch', 'size', 'scale', 'warmup', 'min-steps', 'min-seconds', 'threads'].flatMap((k) => [`--${k}`, opts[k]]);

/** Pretext's side: the SR task's generator (registered srresnet trunk + sub-pixel upsampler), timed per step. */
async function pretextSide() {
  const torch = await import('@pretext/torch');
  const { createBackbone, SubPixelUpsampler } = await import('pretext');
  const { nn, optim, tidy } = torch;
  const [batch, size, scale] = [Number(opts.batch), Number(opts.size), Number(opts.scale)];
  torch.setNumThreads(Number(opts.threads));
  torch.manualSeed(0);
  const trunk = createBackbone('srresnet');
  const upsampler = new SubPixelUpsampler(trunk.outChannels, 3, scale, 64);
  const opt = new optim.Adam([...trunk.parameters(), ...upsampler.parameters()], { lr: 1e-4, betas: [0.9, 0.999] });
  const low = size / scale;
  const pool = Array.from({ length: 4 }, () => [torch.randn([batch, 3, low, low]), torch.randn([batch, 3, size, size])].map(torch.keep));
  let [start, measured, elapsed, loss] = [0, 0, 0, 0];
  for (let step = 1; ; step++) {
    const [x, y] = pool[step % 4];
    loss = tidy(() => {
      opt.zeroGrad();
      const l = nn.functional.mseLoss(upsampler.forward(trunk.forward(x)), y);
      l.backward();
      opt.step();
      return l.item();
    });
    if (step === Number(opts.warmup)) start = performance.now();
    else if (step > Number(opts.warmup)) {
      measured++;
      elapsed = (performance.now() - start) / 1000;
      if (measured >= Number(opts['min-steps']) && elapsed >= Number(opts['min-seconds'])) {
        console.log(JSON.stringify({ images_per_s: (measured * batch) / elapsed, steps: step, loss }));
        return;
      }
    }
  }
}

function run(side) {
  const [cmd, argv, env] =
    side === 'pretext'
      ? [process.execPath, [fileURLToPath(import.meta.url), '--side', 'pretext', ...shared], {}]
      : [
          python,
          [join(here, 'generative.py'), ...shared, ...(side === 'pytorch-channels-last' ? ['--channels-last'] : [])],
          { LD_PRELOAD: tcmalloc },
        ];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${side} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()).images_per_s;
}

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const summary = (xs) => ({ min: sorted(xs)[0], median: sorted(xs)[Math.floor(xs.length / 2)], max: sorted(xs).at(-1) });

if (opts.side === 'pretext') await pretextSide();
else {
  if (spawnSync(python, ['-c', 'import torch']).status !== 0 || !existsSync(tcmalloc)) {
    throw new Error('bench: needs Debian python3-torch and libtcmalloc-minimal4 (npm run bench:engine installs them)');
  }
  console.log(
    `generative benchmark: SRResNet-16 generator step (x${opts.scale}, ${Number(opts.size) / Number(opts.scale)} -> ${opts.size} px, ` +
      `batch ${opts.batch}, MSE, Adam), ${opts.threads} threads, ${opts.rounds} alternating rounds`,
  );
  const speed = { pretext: [], pytorch: [], 'pytorch-channels-last': [] };
  for (let round = 0; round < Number(opts.rounds); round++) {
    for (const side of Object.keys(speed)) {
      speed[side].push(run(side));
      console.log(`  round ${round + 1} ${side.padEnd(22)} ${speed[side].at(-1).toFixed(1)} images/s`);
    }
  }
  const s = Object.fromEntries(Object.entries(speed).map(([side, xs]) => [side, summary(xs)]));
  for (const [side, { min, median, max }] of Object.entries(s)) {
    console.log(`${side.padEnd(22)} min ${min.toFixed(1)}  median ${median.toFixed(1)}  max ${max.toFixed(1)} images/s`);
  }
  const ratio = s.pretext.median / s.pytorch.median;
  const ratioChannelsLast = s.pretext.median / s['pytorch-channels-last'].median;
  console.log(`ratio (Pretext / PyTorch tuned, medians): ${ratio.toFixed(2)}; against channels-last ${ratioChannelsLast.toFixed(2)}`);
  console.log(
    JSON.stringify({
      ratio,
      ratio_channels_last: ratioChannelsLast,
      pretext: s.pretext.median,
      pytorch: s.pytorch.median,
      pytorch_channels_last: s['pytorch-channels-last'].median,
    }),
  );
}
