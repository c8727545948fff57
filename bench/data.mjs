// Data benchmark: first ingest of CIFAR-10's 60,000 JPEGs, reload from the cache, loader
// throughput with augmentation, and synthetic scenes per second. Last line: JSON of the figures.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultCifar10Tarball, ensureCifar10Jpeg, ingestImages, loadStore, measureLoaderThroughput, renderScene } from 'pretext/data';

const tarball = defaultCifar10Tarball();
if (!existsSync(tarball)) {
  console.log(`bench:data skipped: CIFAR-10 is absent (expected ${tarball}; see ../shared/datasets/README.md)`);
  process.exit(0);
}
const cache = mkdtempSync(join(tmpdir(), 'pretext-bench-data-'));
const seconds = (t0) => (performance.now() - t0) / 1000;
const quiet = () => {};

let t0 = performance.now();
const root = ensureCifar10Jpeg(cache, tarball);
const unpackSeconds = seconds(t0);
t0 = performance.now();
const stores = {};
for (const split of ['train', 'test']) {
  const { store } = await ingestImages({
    source: join(root, split),
    size: 32,
    out: join(cache, `${split}.pxs`),
    onProgress: quiet,
    log: quiet,
  });
  stores[split] = store;
}
const ingestSeconds = seconds(t0);
console.log(
  `ingest: ${stores.train.n + stores.test.n} JPEGs in ${ingestSeconds.toFixed(1)} s (+${unpackSeconds.toFixed(1)} s unpacking the tarball)`,
);

t0 = performance.now();
const reloaded = ['train', 'test'].map((split) => loadStore(join(cache, `${split}.pxs`)));
const reloadSeconds = seconds(t0);
console.log(`reload: ${reloaded[0].n + reloaded[1].n} images from the cache in ${reloadSeconds.toFixed(2)} s`);

const augment = {
  randomResizedCrop: { scale: [0.2, 1] },
  horizontalFlip: 0.5,
  colorJitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1, p: 0.8 },
  grayscale: 0.2,
  gaussianBlur: { sigma: [0.1, 2], p: 0.5 },
};
const loaderImagesPerSecond = await measureLoaderThroughput(reloaded[0], { batchSize: 256, augment }, 60);
console.log(`loader: ${loaderImagesPerSecond.toFixed(0)} images/s at batch 256 with crop, flip, color jitter, grayscale and blur`);

let scenes = 0;
t0 = performance.now();
while (seconds(t0) < 5) renderScene(scenes++, { size: 64 });
const scenesPerSecond = scenes / seconds(t0);
console.log(`renderer: ${scenesPerSecond.toFixed(0)} scenes/s at 64x64`);
rmSync(cache, { recursive: true, force: true });

console.log(
  JSON.stringify({
    ingest_seconds: ingestSeconds,
    unpack_seconds: unpackSeconds,
    reload_seconds: reloadSeconds,
    loader_images_per_s: loaderImagesPerSecond,
    renderer_scenes_per_s_64: scenesPerSecond,
  }),
);
