// k-means benchmark: Pretext's kmeans (tasks/kmeans.ts, DeepCluster's clustering) against
// scikit-learn's KMeans (Debian python3-sklearn) on the same clustered float32 data, k-means++
// seeding, one init, the same number of Lloyd iterations (tol 0) and threads, each fit in a fresh
// process, sides alternating round by round with a new seed per round. Prints per k the fit time
// and final inertia (min / median / max) of each side, and a last JSON line with the ratios.
//   node bench/kmeans.mjs [--rounds 5] [--n 50000] [--d 256] [--k 100,1000] [--iterations 20] [--threads 2]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const python = '/usr/bin/python3';
const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    n: { type: 'string', default: '50000' },
    d: { type: 'string', default: '256' },
    k: { type: 'string', default: '100,1000' },
    iterations: { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' },
    seed: { type: 'string', default: '0' },
    // Internal: run one Pretext fit in this process and print its JSON line.
    fit: { type: 'string' },
  },
});
const [n, d, iterations, threads] = [opts.n, opts.d, opts.iterations, opts.threads].map(Number);

if (opts.fit) {
  const torch = await import('@pretext/torch');
  const { kmeans } = await import('../packages/pretext/dist/src/tasks/kmeans.js');
  torch.setNumThreads(threads);
  const bytes = readFileSync(opts.fit);
  const x = torch.fromTypedArray(new Float32Array(bytes.buffer, bytes.byteOffset, n * d), [n, d]);
  const start = performance.now();
  const result = kmeans(x, { k: Number(opts.k), maxIterations: iterations, tolerance: 0, seed: Number(opts.seed) });
  const seconds = (performance.now() - start) / 1000;
  console.log(JSON.stringify({ seconds, inertia: result.inertia, iterations: result.iterations }));
  process.exit(0);
}

function ensureSklearn() {
  if (spawnSync(python, ['-c', 'import sklearn']).status === 0) return;
  console.error('bench: installing python3-sklearn');
  execFileSync('apt-get', ['install', '-y', '-q', 'python3-sklearn'], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

function fit(side, data, k, seed) {
  const common = [
    '--n',
    opts.n,
    '--d',
    opts.d,
    '--k',
    String(k),
    '--iterations',
    opts.iterations,
    '--seed',
    String(seed),
    '--threads',
    opts.threads,
  ];
  const [cmd, argv] =
    side === 'pretext'
      ? [process.execPath, [fileURLToPath(import.meta.url), '--fit', data, ...common]]
      : [python, [join(here, 'kmeans.py'), 'fit', '--data', data, ...common]];
  const env = { ...process.env, OMP_NUM_THREADS: opts.threads, OPENBLAS_NUM_THREADS: opts.threads };
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`${side} k=${k} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const median = (xs) => sorted(xs)[Math.floor(xs.length / 2)];
const spread = (xs, digits) => {
  const s = sorted(xs);
  return `${s[0].toFixed(digits)} / ${median(s).toFixed(digits)} / ${s[s.length - 1].toFixed(digits)}`;
};

ensureSklearn();
const folder = mkdtempSync(join(tmpdir(), 'pretext-kmeans-bench-'));
try {
  const data = join(folder, 'x.f32');
  execFileSync(python, [join(here, 'kmeans.py'), 'generate', '--out', data, '--n', opts.n, '--d', opts.d, '--seed', opts.seed]);
  console.log(
    `k-means benchmark: ${n} x ${d} float32 clustered points, k-means++ and ${iterations} Lloyd iterations (tol 0), ` +
      `${threads} threads, ${opts.rounds} alternating rounds (min / median / max)`,
  );
  const summary = {};
  for (const k of opts.k.split(',').map(Number)) {
    const runs = { pretext: [], sklearn: [] };
    for (let round = 0; round < Number(opts.rounds); round++) {
      const sides = round % 2 === 0 ? ['pretext', 'sklearn'] : ['sklearn', 'pretext'];
      for (const side of sides) runs[side].push(fit(side, data, k, round + 1));
    }
    for (const [side, rs] of Object.entries(runs)) {
      console.log(
        `  k=${String(k).padEnd(5)} ${side.padEnd(8)} ${spread(
          rs.map((r) => r.seconds),
          2,
        )} s   inertia ${spread(
          rs.map((r) => r.inertia),
          0,
        )}   iterations ${rs.map((r) => r.iterations).join(',')}`,
      );
    }
    const [p, s] = [runs.pretext, runs.sklearn];
    const timeRatio = median(p.map((r) => r.seconds)) / median(s.map((r) => r.seconds));
    const inertiaRatio = median(p.map((r) => r.inertia)) / median(s.map((r) => r.inertia));
    console.log(`  k=${k}: time Pretext / scikit-learn ${timeRatio.toFixed(2)}, median inertia ratio ${inertiaRatio.toFixed(4)}`);
    summary[`time_ratio_k${k}`] = timeRatio;
    summary[`inertia_ratio_k${k}`] = inertiaRatio;
  }
  console.log(JSON.stringify(summary));
} finally {
  rmSync(folder, { recursive: true, force: true });
}
