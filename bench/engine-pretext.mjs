// Pretext side of the engine benchmark: the recipe of engine.py, written the documented way.
// Prints one JSON line: {model, images_per_s, steps, loss, rss_mb, heap_mb (V8's), cpu_cache, train_gflop_per_image}.
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as torch from '@pretext/torch';
import { createBackbone } from 'pretext';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    batch: { type: 'string', default: '128' },
    warmup: { type: 'string', default: '2' },
    'min-steps': { type: 'string', default: '5' },
    'min-seconds': { type: 'string', default: '10' },
    'max-steps': { type: 'string', default: '1000000' },
    'rss-at': { type: 'string', default: '' },
    bf16: { type: 'boolean', default: false },
  },
});
const batch = Number(a.batch);
const rssAt = new Set(a['rss-at'].split(',').filter(Boolean).map(Number));
const { nn, optim, tidy } = torch;
const F = nn.functional;

torch.manualSeed(0);
const trunk = createBackbone(a.model);
const head = new nn.Linear(trunk.outChannels, 10);
const opt = new optim.SGD([...trunk.parameters(), ...head.parameters()], { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
const pool = Array.from({ length: 4 }, () => torch.keep(torch.randn([batch, 3, 32, 32])));
const labels = Array.from({ length: 4 }, () => torch.keep(torch.randint(0, 10, [batch])));

// Model FLOPs: multiply-adds of every conv and linear layer in one forward pass, times 2,
// and training counts 3 forward passes' worth (forward, input gradients, weight gradients).
function forwardFlopsPerImage() {
  let flops = 0;
  const conv = nn.Conv2d.prototype.forward;
  const linear = nn.Linear.prototype.forward;
  nn.Conv2d.prototype.forward = function (x) {
    const y = conv.call(this, x);
    const [, cout, h, w] = y.shape;
    const [, cinPerGroup, kh, kw] = this.weight.shape;
    flops += 2 * cinPerGroup * kh * kw * cout * h * w;
    return y;
  };
  nn.Linear.prototype.forward = function (x) {
    flops += 2 * this.weight.numel();
    return linear.call(this, x);
  };
  torch.noGrad(() => tidy(() => head.forward(trunk.forward(torch.zeros([1, 3, 32, 32])).mean([2, 3]))));
  nn.Conv2d.prototype.forward = conv;
  nn.Linear.prototype.forward = linear;
  return flops;
}
const trainGflopPerImage = (3 * forwardFlopsPerImage()) / 1e9;

// RSS is read after a full GC, so that garbage V8 has not collected yet does not count as growth
// (a leak of live tensors still does). The CPU cache's mapped bytes and misses are printed beside.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const rss = {};
const cache = {};
const heap = {};
let start = 0;
let measured = 0;
let elapsed = 0;
let loss = 0;
for (let step = 1; ; step++) {
  loss = tidy(() => {
    opt.zeroGrad();
    const forward = () => F.crossEntropy(head.forward(trunk.forward(pool[step % 4]).mean([2, 3])), labels[step % 4]);
    const l = a.bf16 ? torch.autocast('cpu', 'bfloat16', forward) : forward();
    l.backward();
    opt.step();
    return step % 50 === 0 ? l.item() : loss;
  });
  if (rssAt.has(step)) {
    gc();
    const memory = process.memoryUsage();
    rss[step] = memory.rss / 1e6;
    heap[step] = memory.heapTotal / 1e6;
    const c = torch.cpuCache.stats();
    cache[step] = { mapped_mb: (c.liveBytes + c.cachedBytes) / 1e6, misses: c.misses };
  }
  if (step === Number(a.warmup)) start = performance.now();
  else if (step > Number(a.warmup)) {
    measured++;
    elapsed = (performance.now() - start) / 1000;
    if ((measured >= Number(a['min-steps']) && elapsed >= Number(a['min-seconds'])) || step >= Number(a['max-steps'])) {
      console.log(
        JSON.stringify({
          model: a.model,
          images_per_s: (measured * batch) / elapsed,
          steps: step,
          loss,
          rss_mb: rss,
          cpu_cache: cache,
          heap_mb: heap,
          train_gflop_per_image: trainGflopPerImage,
        }),
      );
      break;
    }
  }
}
