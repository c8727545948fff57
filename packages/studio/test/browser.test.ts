// End to end in Debian's chromium (through playwright-core, never a downloaded browser): every page
// clicked through and checked, a pretraining run started in another process whose chart grows in
// the open page, an upload answered, a bad upload refused while the server keeps serving.
// Screenshots go to $STUDIO_SCREENSHOTS when set (docs/studio), else to the test's temporary folder.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import sharp from 'sharp';
import type { BenchResults } from '../src/index.js';
import type { Studio } from '../src/server.js';
import { CLASSES, studioFor, tinyPretrain, writeSceneStore } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const WAIT = { timeout: 90_000 };

/** A bench results file as `pretext bench` writes it (the Results page's input). */
function benchResults(): BenchResults {
  const row = (name: string, kind: 'pretext' | 'random' | 'supervised', top1: number[]): BenchResults['rows'][number] => ({
    dataset: 'scenes',
    name,
    kind,
    seed: 0,
    block: 'conv3',
    cells: Object.fromEntries(
      ['linear', 'knn', 'linear@20'].map((c, i) => [
        c,
        { protocol: c.split('@')[0], labelsPerClass: c.includes('@') ? 20 : undefined, top1: top1[i] },
      ]),
    ),
    pretraining: kind === 'pretext' ? { epochs: 30, cpuMinutes: 12.5 } : undefined,
  });
  return {
    createdAt: new Date().toISOString(),
    settings: { backbone: 'alexnet-small', block: 'conv3' },
    columns: ['linear', 'knn', 'linear@20'],
    rows: [
      row('rotation', 'pretext', [71.2, 66.3, 55.1]),
      row('jigsaw', 'pretext', [64.8, 61.0, 50.2]),
      row('random init', 'random', [48.9, 45.5, 38.7]),
      row('supervised', 'supervised', [88.4, 86.1, 60.3]),
    ],
  };
}

describe('studio in a browser', () => {
  // Removed by the suite's own after(), once the browser and the server are closed.
  const root = mkdtempSync(join(tmpdir(), 'pretext-studio-browser-'));
  const profile = join(root, 'chromium-profile');
  const runs = join(root, 'runs');
  const shots = process.env.STUDIO_SCREENSHOTS ?? join(root, 'screenshots');
  const store = join(root, 'scenes.pxs');
  let studio: Studio;
  let context: BrowserContext;
  let page: Page;
  let training: ChildProcess | undefined;

  /** A small screenshot of the page (palette PNG, 1000 px wide). */
  async function screenshot(name: string): Promise<void> {
    const png = await page.screenshot({ fullPage: false });
    const path = join(shots, `${name}.png`);
    await sharp(png).resize({ width: 1000 }).png({ palette: true, compressionLevel: 9 }).toFile(path);
    assert.ok(statSync(path).size > 5000, `${name}.png is not empty`);
  }

  const open = async (name: string) => {
    await page.click(`nav a[data-page="${name}"]`);
    await page.waitForSelector('main h1', WAIT);
  };

  before(async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `the browser tests need Debian's chromium at ${CHROMIUM}: apt-get install chromium (scripts/setup.sh does)`,
    );
    mkdirSync(shots, { recursive: true });
    mkdirSync(join(runs, 'bench'), { recursive: true });
    writeFileSync(join(runs, 'bench', 'results.json'), JSON.stringify(benchResults()));
    writeSceneStore(store, 160);
    studio = await studioFor({ runs, data: store });
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 860 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    await page.goto(studio.urlWithToken);
  });

  after(async () => {
    training?.kill('SIGKILL');
    await context?.close();
    await studio?.close();
    rmSync(root, { recursive: true, force: true, maxRetries: 5 });
  });

  it('shows a card per task with examples drawn from the data', async () => {
    const tasks = (await (await fetch(new URL('/api/tasks', studio.url))).json()) as { name: string }[];
    assert.ok(tasks.length >= 9);
    assert.equal(await page.locator('article.task').count(), tasks.length);
    assert.ok(!page.url().includes('token='), 'the token leaves the address bar');
    const rotation = page.locator('article.task[data-task="rotation"]');
    await rotation.locator('.picture img').first().waitFor(WAIT);
    assert.equal(await rotation.locator('.picture img').count(), 16, 'four images in four rotations');
    assert.deepEqual(await rotation.locator('figcaption').evaluateAll((f) => [...new Set(f.map((e) => e.textContent))].sort()), [
      '0°',
      '180°',
      '270°',
      '90°',
    ]);
    const jigsaw = page.locator('article.task[data-task="jigsaw"]');
    await jigsaw.locator('.picture img').first().waitFor(WAIT);
    const first = await rotation.locator('.picture img').first().getAttribute('src');
    await rotation.locator('button.draw').click();
    await page.waitForFunction(
      (src) => {
        const img = document.querySelector('article.task[data-task="rotation"] .picture img');
        return img && img.getAttribute('src') !== src;
      },
      first,
      WAIT,
    );
    // Let the other cards finish (each draws from the data, one at a time on the server).
    await page.waitForFunction(
      () => [...document.querySelectorAll('article.task')].every((c) => c.querySelector('.picture, .error')),
      null,
      WAIT,
    );
    await screenshot('tasks');
  });

  it('follows a pretraining run in another process: the chart grows while it trains', async () => {
    training = spawn(process.execPath, tinyPretrain(store, join(runs, 'live'), ['--limit', '96', '--epochs', '2', '--log-every', '1']), {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    training.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => training!.on('exit', resolve));
    await open('runs');
    await page.locator('table.runs tr[data-run="live"] a').click(WAIT);
    await page.waitForSelector('.run-status [data-run="live"]', WAIT);
    const loss = page.locator('.chart.line[data-title="loss"]');
    await loss.waitFor(WAIT);
    const points = async () => Number(await loss.getAttribute('data-points'));
    const seen = [await points()];
    // Each logged step adds a point; watch at least two arrive while the run is going.
    while (seen.length < 3 && training.exitCode === null) {
      await page.waitForFunction(
        (n) => Number(document.querySelector('.chart.line[data-title="loss"]')?.getAttribute('data-points')) > n,
        seen.at(-1)!,
        WAIT,
      );
      seen.push(await points());
    }
    assert.ok(seen.length >= 3 && seen[2] > seen[0], `the chart grew while the run trained: ${seen.join(' -> ')}`);
    assert.equal(await exited, 0, stderr);
    await page.waitForSelector('.run-status [data-run="live"] .status.finished', WAIT);
    await page.waitForFunction(
      () => Number(document.querySelector('.chart.line[data-title="loss"]')?.getAttribute('data-points')) === 12,
      null,
      WAIT,
    );
    for (const title of ['acc', 'lr', 'imagesPerSecond'])
      assert.equal(await page.locator(`.chart.line[data-title="${title}"]`).count(), 1, title);
    assert.equal(await page.locator('table.epochs tbody tr').count(), 2);
    await screenshot('run');
    await open('runs');
    await page.waitForSelector('table.runs tr[data-run="live"] .status.finished', WAIT);
    await screenshot('runs');
  });

  it('shows the trained model answering on the task card', async () => {
    await open('tasks');
    const rotation = page.locator('article.task[data-task="rotation"]');
    assert.equal(await rotation.locator('select').inputValue(), 'live');
    await rotation.locator('.summary').waitFor(WAIT);
    assert.match((await rotation.locator('.summary').textContent())!, /^\d+\/16 right$/);
    assert.equal(await rotation.locator('figcaption.right, figcaption.wrong').count(), 16);
  });

  it('answers an uploaded image, refuses a bad one and keeps serving', async () => {
    await open('try');
    const image = join(root, 'photo.png');
    await sharp(randomBytes(64 * 48 * 3), { raw: { width: 64, height: 48, channels: 3 } })
      .png()
      .toFile(image);
    const bad = join(root, 'notes.png');
    writeFileSync(bad, 'this is not a picture');
    await page.setInputFiles('.drop input[type=file]', bad);
    await page.locator('p.error').waitFor(WAIT);
    assert.match((await page.locator('p.error').textContent())!, /not an image/);
    assert.equal((await fetch(new URL('/api/info', studio.url))).status, 200, 'still serving after the bad upload');
    await page.setInputFiles('.drop input[type=file]', image);
    const answer = page.locator('article.answer[data-task="rotation"]');
    await answer.locator('.picture img').first().waitFor(WAIT);
    assert.equal(await answer.locator('.picture img').count(), 4);
    assert.equal(await answer.locator('figcaption.right, figcaption.wrong').count(), 4);
    assert.match((await page.locator('article.answer[data-task="jigsaw"] .note').textContent())!, /no trained run/);
    await screenshot('try');
  });

  it('maps the embeddings, shows a thumbnail on hover and the nearest neighbours on click', async () => {
    await open('embeddings');
    await page.waitForFunction(() => (document.querySelector('select[name="layer"]') as HTMLSelectElement | null)?.value, null, WAIT);
    await page.locator('button.map').click();
    const scatter = page.locator('.chart.scatter[data-points="160"]');
    await scatter.waitFor(WAIT);
    const box = (await scatter.locator('canvas').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.5);
    await page.locator('.thumb img').waitFor(WAIT);
    assert.ok(CLASSES.includes((await page.locator('.thumb span').textContent())!));
    await page.mouse.click(box.x + box.width * 0.4, box.y + box.height * 0.5);
    await page.locator('.neighbours figure.same, .neighbours figure.other').first().waitFor(WAIT);
    assert.equal(await page.locator('.neighbours figure').count(), 13, 'the query and its 12 neighbours');
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.5);
    await screenshot('embeddings');
  });

  it('shows the bench results as sortable tables and a chart', async () => {
    await open('results');
    const table = page.locator('table.results[data-dataset="scenes"]');
    await table.waitFor(WAIT);
    const names = () => table.locator('tbody tr td:first-child').allTextContents();
    assert.deepEqual(await names(), ['supervised', 'rotation', 'jigsaw', 'random init'], 'sorted by the first column, best first');
    await table.locator('th[data-key="linear"]').click();
    assert.deepEqual(await names(), ['random init', 'jigsaw', 'rotation', 'supervised']);
    await table.locator('th[data-key="name"]').click();
    assert.deepEqual(await names(), ['supervised', 'rotation', 'random init', 'jigsaw']);
    assert.equal(await page.locator('.chart.bar canvas').count(), 1);
    await screenshot('results');
  });
});
