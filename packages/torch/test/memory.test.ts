// Deterministic freeing with tidy/keep, and a training loop whose memory stays flat.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as torch from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { native } from '../src/handle.js';

const { nn, optim } = torch;
const F = nn.functional;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Resident memory after a full garbage collection (so that only live objects count). */
function rss(): number {
  gc();
  gc();
  return process.memoryUsage().rss;
}

const MB = 1024 * 1024;

describe('tidy and keep', () => {
  test('frees everything created inside except returned and kept tensors', () => {
    let a: Tensor | undefined;
    let b: Tensor | undefined;
    let k: Tensor | undefined;
    const result = torch.tidy(() => {
      a = torch.ones([3]);
      b = a.mul(2);
      k = torch.keep(b.add(1));
      const viaMap = new Map([['m', b.sub(1)]]);
      return { out: b.add(a), list: [b.mul(3)], nested: { deep: [[b.neg()]] }, viaMap, n: 5 };
    });
    assert.equal(a!.isDisposed, true);
    assert.equal(b!.isDisposed, true);
    assert.equal(k!.isDisposed, false);
    assert.deepEqual(result.out.toArray(), [3, 3, 3]);
    assert.deepEqual(result.list[0].toArray(), [6, 6, 6]);
    assert.deepEqual(result.nested.deep[0][0].toArray(), [-2, -2, -2]);
    assert.deepEqual(result.viaMap.get('m')!.toArray(), [1, 1, 1]);
    assert.deepEqual(k!.toArray(), [3, 3, 3]);
    assert.equal(result.n, 5);
    for (const t of [result.out, result.list[0], result.nested.deep[0][0], result.viaMap.get('m')!, k!]) t.dispose();
  });

  test('nested tidy moves returned tensors to the parent scope', () => {
    let moved: Tensor | undefined;
    let innerTemp: Tensor | undefined;
    const survivor = torch.tidy(() => {
      moved = torch.tidy(() => {
        innerTemp = torch.ones([2]);
        return innerTemp.add(1);
      });
      assert.equal(innerTemp!.isDisposed, true);
      assert.equal(moved.isDisposed, false);
      return torch.tidy(() => moved!.mul(2)); // moved is freed by the outer scope, the product survives
    });
    assert.equal(moved!.isDisposed, true);
    assert.equal(survivor.isDisposed, false);
    assert.deepEqual(survivor.toArray(), [4, 4]);
    survivor.dispose();
  });

  test('an exception inside tidy still frees, in every scope it crosses', () => {
    let outerTemp: Tensor | undefined;
    let innerTemp: Tensor | undefined;
    const depth = torch.scopeDepth();
    assert.throws(
      () =>
        torch.tidy(() => {
          outerTemp = torch.ones([2]);
          torch.tidy(() => {
            innerTemp = torch.ones([2]);
            throw new Error('boom');
          });
        }),
      /boom/,
    );
    assert.equal(innerTemp!.isDisposed, true);
    assert.equal(outerTemp!.isDisposed, true);
    assert.equal(torch.scopeDepth(), depth);
    // An exception caught inside the outer scope leaves the outer scope working.
    const kept = torch.tidy(() => {
      try {
        torch.tidy(() => {
          innerTemp = torch.zeros([1]);
          throw new Error('inner only');
        });
      } catch {
        // expected
      }
      assert.equal(innerTemp!.isDisposed, true);
      return torch.ones([1]);
    });
    assert.equal(kept.isDisposed, false);
    kept.dispose();
  });

  test('tensors from outside the scope are left alone; async functions are refused and freed', async () => {
    const outside = torch.ones([2]);
    torch.tidy(() => outside.add(1).sum().item());
    assert.equal(outside.isDisposed, false);
    let created: Tensor | undefined;
    assert.throws(
      () =>
        torch.tidy(() => {
          created = torch.ones([2]);
          return Promise.resolve(1);
        }),
      /tidy: the function must be synchronous/,
    );
    assert.equal(created!.isDisposed, true);
    outside.dispose();
  });

  test('memory is reported once per tensor that outlives every scope, with no call for the others', () => {
    const { reportMemory, setScoped } = native;
    let reports = 0;
    const scoped: boolean[] = [];
    native.reportMemory = (h) => {
      reports++;
      reportMemory(h);
    };
    native.setScoped = (open) => {
      scoped.push(open);
      setScoped(open);
    };
    try {
      // Made outside any scope: the native side reports it as it makes the handle; keep() adds nothing.
      const outside = torch.keep(torch.ones([4]).add(1));
      assert.equal(reports, 0);
      const result = torch.tidy(() => {
        const kept = torch.keep(torch.ones([4])); // leaves the scope here: one report
        torch.tidy(() => torch.ones([2]).add(1)); // a nested scope does not toggle the native flag
        torch.keep(kept); // already in no scope: no second report
        return { kept, out: torch.ones([4]).mul(2) }; // leaves the last scope on return: one report
      });
      assert.equal(reports, 2);
      assert.deepEqual(scoped, [true, false]);
      assert.throws(() => torch.tidy(() => torch.tidy(() => torch.ones([1]).item() + torch.ones([1], 'float32', 'tpu').item())), /tpu/);
      assert.deepEqual(scoped, [true, false, true, false]);
      assert.equal(torch.scopeDepth(), 0);
      // A disposed tensor makes no native call.
      outside.dispose();
      outside.reportMemory();
      assert.equal(reports, 2);
      assert.deepEqual(result.out.toArray(), [2, 2, 2, 2]);
      result.kept.dispose();
      result.out.dispose();
    } finally {
      native.reportMemory = reportMemory;
      native.setScoped = setScoped;
    }
  });

  test('disposing twice is harmless; disposing a view keeps the base alive', () => {
    const base = torch.arange(0, 6, 1, 'float32');
    const view = base.reshape([2, 3]);
    view.dispose();
    view.dispose();
    assert.equal(view.isDisposed, true);
    assert.deepEqual(base.toArray(), [0, 1, 2, 3, 4, 5]);
    assert.equal(String(view), 'tensor(<disposed>)');
    base.dispose();
  });

  test('parameters, buffers and optimizer state survive the scopes they were made in', () => {
    const { model, opt } = torch.tidy(() => {
      const model = new nn.Sequential(new nn.Linear(3, 4), new nn.BatchNorm1d(4));
      const opt = new optim.Adam(model.parameters(), { lr: 0.01 });
      torch.tidy(() => {
        model
          .forward(torch.randn([5, 3]))
          .square()
          .mean()
          .backward();
        opt.step();
      });
      return { model, opt };
    });
    for (const p of model.parameters()) assert.equal(p.isDisposed, false);
    for (const [, b] of model.namedBuffers()) assert.equal(b.isDisposed, false);
    for (const s of opt.state.values()) for (const v of Object.values(s)) if (typeof v !== 'number') assert.equal(v.isDisposed, false);
    assert.equal(opt.state.size, 4);
  });

  test('the RSS measure sees tensors that are not freed', () => {
    const before = rss();
    const leaked = Array.from({ length: 24 }, () => torch.ones([MB / 4])); // 24 x 1 MB, pages touched
    assert.ok(rss() - before >= 16 * MB, 'a 24 MB leak shows up');
    for (const t of leaked) t.dispose();
  });
});

test('handles of disposed tensors are reclaimed by GC alone, without yielding to the event loop', () => {
  // A synchronous loop never lets Node run deferred finalizers; the addon's run during GC.
  const a = torch.ones([4]);
  const churn = (n: number) => {
    for (let i = 0; i < n; i++) torch.tidy(() => a.add(1).mul(2));
  };
  churn(10000);
  const before = rss();
  churn(60000); // 120k handles: a few hundred bytes each would be tens of MB if they stayed
  const growth = rss() - before;
  assert.ok(growth < 4 * MB, `RSS grew by ${(growth / MB).toFixed(2)} MB over 120k short-lived handles`);
  a.dispose();
});

class SmallNet extends nn.Module {
  conv1 = new nn.Conv2d(3, 8, 3, { padding: 1 });
  bn1 = new nn.BatchNorm2d(8);
  conv2 = new nn.Conv2d(8, 16, 3, { stride: 2, padding: 1 });
  head = new nn.Linear(16, 10);
  forward(x: Tensor): Tensor {
    const h = this.bn1.forward(this.conv1.forward(x)).relu();
    const g = this.conv2.forward(h).relu();
    return this.head.forward(F.adaptiveAvgPool2d(g, 1).flatten(1));
  }
}

test('a 900-step training loop written with tidy per step keeps RSS flat', () => {
  // Tiny ops on a shared 2-core machine: intra-op threads would only add synchronisation.
  const threads = torch.getNumThreads();
  torch.setNumThreads(1);
  try {
    torch.manualSeed(0);
    const model = new SmallNet();
    const opt = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
    const data = torch.randn([16, 3, 16, 16]);
    const labels = torch.randint(0, 10, [16]);
    const step = (): number =>
      torch.tidy(() => {
        opt.zeroGrad();
        const x = data.add(torch.randn(data.shape).mul(0.1)); // fresh augmentation noise every step
        const loss = F.crossEntropy(model.forward(x), labels);
        loss.backward();
        opt.step();
        return loss.item();
      });

    const losses: number[] = [];
    // glibc's arenas take a few hundred steps to settle (RSS rises 8-13 MB over the first 500 steps,
    // then stays within a few MB), so the measured window starts after 300.
    for (let i = 0; i < 300; i++) losses.push(step());
    const warm = rss();
    for (let i = 300; i < 900; i++) losses.push(step());
    const growth = rss() - warm;
    // Leaking one 24 KB tensor per step would add 14 MB over the 600 measured steps, and this net's
    // conv activations are 64-128 KB each.
    assert.ok(
      growth < Math.min(0.05 * warm, 12 * MB),
      `RSS grew by ${(growth / MB).toFixed(2)} MB from ${(warm / MB).toFixed(1)} MB over 600 steps`,
    );
    const first = losses.slice(0, 10).reduce((a, b) => a + b) / 10;
    const last = losses.slice(-10).reduce((a, b) => a + b) / 10;
    assert.ok(last < first, `the loop trains: loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  } finally {
    torch.setNumThreads(threads);
  }
});

describe('CPU caching allocator', () => {
  const stats = () => torch.cpuCache.stats();

  test('a freed block serves the next tensor of about its size; empty() gives idle blocks back to the system', () => {
    torch.cpuCache.empty();
    const start = stats();
    assert.equal(start.enabled, true);
    assert.equal(start.cachedBytes, 0);
    const a = torch.ones([MB]); // 4 MB
    assert.equal(stats().misses, start.misses + 1);
    assert.equal(stats().liveBytes, start.liveBytes + 4 * MB);
    a.dispose();
    assert.equal(stats().cachedBytes, 4 * MB);
    assert.equal(stats().liveBytes, start.liveBytes);

    const b = torch.full([MB - 1000], 3); // within 1/8 of the cached size: reused, and fully rewritten
    assert.equal(stats().hits, start.hits + 1);
    assert.equal(stats().cachedBytes, 0);
    assert.equal(b.sum().item(), 3 * (MB - 1000));
    const c = torch.ones([MB / 2]); // 2 MB: too small for the 4 MB block, so a fresh mapping
    assert.equal(stats().misses, start.misses + 2);
    b.dispose();
    c.dispose();

    const small = stats();
    torch.tidy(() => void torch.ones([1000]).add(1)); // under 256 KiB: libtorch's own allocator
    assert.deepEqual(stats(), small);

    const before = rss();
    assert.equal(torch.cpuCache.empty(), 6 * MB);
    assert.equal(stats().cachedBytes, 0);
    assert.ok(before - rss() >= 5 * MB, 'unmapped blocks leave RSS');
  });

  test('a training loop maps nothing new after its first steps, and each step gives back what it took', () => {
    torch.manualSeed(0);
    const model = new SmallNet();
    const opt = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    const data = torch.randn([64, 3, 32, 32]); // 768 KB, activations 2 MB
    const labels = torch.randint(0, 10, [64]);
    const step = () =>
      torch.tidy(() => {
        opt.zeroGrad();
        F.crossEntropy(model.forward(data.add(torch.randn(data.shape).mul(0.1))), labels).backward();
        opt.step();
      });
    for (let i = 0; i < 3; i++) step();
    const warm = stats();
    for (let i = 0; i < 20; i++) step();
    const after = stats();
    assert.equal(after.misses, warm.misses, 'no new mappings');
    assert.ok(after.hits - warm.hits >= 20 * 4, `every step reuses its blocks (${after.hits - warm.hits} hits)`);
    assert.equal(after.liveBytes, warm.liveBytes);
  });

  test('PRETEXT_CPU_CACHE=0 keeps libtorch allocator; PRETEXT_CPU_CACHE_LIMIT_MB bounds idle bytes', () => {
    const probe = `
      const torch = await import(${JSON.stringify(new URL('../src/index.js', import.meta.url).href)});
      const t = torch.ones([${MB}]);
      t.dispose();
      console.log(JSON.stringify(torch.cpuCache.stats()));`;
    const run = (env: Record<string, string>) => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { env: { ...process.env, ...env }, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as torch.CpuCacheStats;
    };
    assert.equal(run({ PRETEXT_CPU_CACHE: '0' }).enabled, false);
    const bounded = run({ PRETEXT_CPU_CACHE_LIMIT_MB: '1' });
    assert.equal(bounded.limitBytes, 1 << 20);
    assert.equal(bounded.cachedBytes, 0, 'a 4 MB block past a 1 MB limit is unmapped, not kept');
    assert.equal(bounded.misses, 1);
  });
});
