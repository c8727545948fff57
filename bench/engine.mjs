// Engine benchmark: Pretext against plain PyTorch (Debian python3-torch) on the same recipe,
// run side by side in one process tree, alternating so that machine noise hits every side.
// PyTorch runs as a user gets it (default malloc, NCHW), tuned (tcmalloc), and tuned and channels-last
// (the layout Pretext's Conv2d uses by default), so that every ratio can be read against like for like.
// Last line: {"ratio_nin", "ratio_resnet", "ratio_nin_default", "ratio_resnet_default", "gflops_nin", "rss_growth_pct",
// "ratio_nin_channels_last", "ratio_resnet_channels_last"}.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    bf16: { type: 'boolean', default: false },
    'soak-steps': { type: 'string', default: '10000' },
    'soak-batch': { type: 'string', default: '32' },
    'min-seconds': { type: 'string', default: '15' },
  },
});
const python = '/usr/bin/python3';
const tcmalloc = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';

function ensureDebianPackages() {
  const missing = [];
  if (spawnSync(python, ['-c', 'import torch']).status !== 0) missing.push('python3-torch');
  if (!existsSync(tcmalloc)) missing.push('libtcmalloc-minimal4');
  if (missing.length === 0) return;
  console.error(`bench: installing ${missing.join(' ')}`);
  execFileSync('apt-get', ['install', '-y', '-q', ...missing], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

function run(side, model, args) {
  const common = ['--model', model, ...args];
  const [cmd, argv, env] =
    side === 'pretext'
      ? [process.execPath, [join(here, 'engine-pretext.mjs'), ...common], {}]
      : [
          python,
          [join(here, 'engine.py'), ...common, ...(side === 'pytorch-channels-last' ? ['--channels-last'] : [])],
          side === 'pytorch-default' ? {} : { LD_PRELOAD: tcmalloc },
        ];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${side} ${model} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

ensureDebianPackages();
const threads = Number(execFileSync('nproc').toString());
console.log(
  `engine benchmark: batch 128, 32x32 random inputs, SGD nesterov, ${threads} threads, ${opts.rounds} alternating rounds` +
    (opts.bf16 ? ', forward under bfloat16 autocast on both sides' : ''),
);
const results = {};
for (const model of ['nin4', 'resnet18-small']) {
  const speed = { pretext: [], 'pytorch-tuned': [], 'pytorch-default': [], 'pytorch-channels-last': [] };
  let gflop = 0;
  for (let round = 0; round < Number(opts.rounds); round++) {
    for (const side of Object.keys(speed)) {
      // Default malloc is slow enough on NIN that one round of a few steps says all there is.
      if (side === 'pytorch-default' && round > 0) continue;
      const precision = opts.bf16 && side !== 'pytorch-default' ? ['--bf16'] : [];
      const r = run(side, model, [
        '--min-seconds',
        opts['min-seconds'],
        '--min-steps',
        side === 'pytorch-default' ? '3' : '5',
        ...precision,
      ]);
      speed[side].push(r.images_per_s);
      if (r.train_gflop_per_image) gflop = r.train_gflop_per_image;
      console.log(`  ${model.padEnd(15)} ${side.padEnd(16)} ${r.images_per_s.toFixed(1)} images/s`);
    }
  }
  const m = Object.fromEntries(Object.entries(speed).map(([k, v]) => [k, median(v)]));
  // Each round's ratio, with its spread: a median alone moves by 5-25% on a shared machine.
  for (const other of ['pytorch-tuned', 'pytorch-channels-last']) {
    const ratios = speed.pretext.map((p, i) => p / speed[other][i]).sort((a, b) => a - b);
    console.log(
      `  ${model} Pretext / ${other}: min ${ratios[0].toFixed(2)}, median ${median(ratios).toFixed(2)}, max ${ratios.at(-1).toFixed(2)} over ${ratios.length} rounds`,
    );
  }
  results[model] = { ...m, gflopsAchieved: m.pretext * gflop, trainGflopPerImage: gflop };
  console.log(
    `${model}: Pretext ${m.pretext.toFixed(1)}, PyTorch tuned ${m['pytorch-tuned'].toFixed(1)}, default ${m['pytorch-default'].toFixed(1)}, ` +
      `tuned channels-last ${m['pytorch-channels-last'].toFixed(1)} images/s; ratio ${(m.pretext / m['pytorch-tuned']).toFixed(2)} (tuned), ` +
      `${(m.pretext / m['pytorch-default']).toFixed(2)} (default), ${(m.pretext / m['pytorch-channels-last']).toFixed(2)} (tuned channels-last); ` +
      `${(m.pretext * gflop).toFixed(0)} GFLOP/s of model FLOPs`,
  );
}

const soakSteps = Number(opts['soak-steps']);
// RSS is compared from a settled step (1000, or a tenth of a shorter soak) to the last.
const settled = Math.min(1000, Math.max(1, Math.floor(soakSteps / 10)));
const soak = run('pretext', 'resnet18-small', [
  '--batch',
  opts['soak-batch'],
  '--max-steps',
  String(soakSteps),
  '--min-steps',
  '1e9',
  '--min-seconds',
  '1e9',
  '--rss-at',
  `${settled},${soakSteps}`,
]);
const rssSettled = soak.rss_mb[settled];
const rssLast = soak.rss_mb[soakSteps];
const growth = ((rssLast - rssSettled) / rssSettled) * 100;
console.log(
  `RSS over ${soakSteps} steps of resnet18-small (batch ${opts['soak-batch']}): ${rssSettled.toFixed(0)} MB at step ${settled}, ${rssLast.toFixed(0)} MB at step ${soakSteps} (${growth.toFixed(2)}%)`,
);
const [cacheSettled, cacheLast] = [soak.cpu_cache[settled], soak.cpu_cache[soakSteps]];
console.log(
  `CPU cache: ${cacheSettled.mapped_mb.toFixed(1)} MB mapped and ${cacheSettled.misses} misses at step ${settled}, ${cacheLast.mapped_mb.toFixed(1)} MB and ${cacheLast.misses} at step ${soakSteps}; ` +
    `V8 heap ${soak.heap_mb[settled].toFixed(1)} MB, then ${soak.heap_mb[soakSteps].toFixed(1)} MB`,
);

const nin = results.nin4;
const resnet = results['resnet18-small'];
console.log(
  JSON.stringify({
    ratio_nin: nin.pretext / nin['pytorch-tuned'],
    ratio_resnet: resnet.pretext / resnet['pytorch-tuned'],
    ratio_nin_default: nin.pretext / nin['pytorch-default'],
    ratio_resnet_default: resnet.pretext / resnet['pytorch-default'],
    gflops_nin: nin.gflopsAchieved,
    rss_growth_pct: growth,
    ratio_nin_channels_last: nin.pretext / nin['pytorch-channels-last'],
    ratio_resnet_channels_last: resnet.pretext / resnet['pytorch-channels-last'],
  }),
);
