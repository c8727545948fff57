// Reading runs: lenient metrics parsing, following a file that grows (lines cut mid-write, a
// restarted run), run status, and the server-sent events that carry new lines to the page.
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MetricsFollower, parseMetricLines, runStatus, type MetricRecord } from '../src/runs.js';
import { studioFor, tempDir } from './helpers.js';

const step = (n: number, time = new Date().toISOString()) => JSON.stringify({ type: 'step', epoch: 1, step: n, loss: 1 / n, time });

describe('metrics.jsonl', () => {
  it('keeps step and epoch records and skips malformed lines', () => {
    const { records, skipped } = parseMetricLines([
      step(1),
      '',
      '{"type":"ep',
      '[1,2]',
      '{"no":"type"}',
      JSON.stringify({ type: 'epoch', epoch: 1, steps: 4 }),
    ]);
    assert.deepEqual(
      records.map((r) => r.type),
      ['step', 'epoch'],
    );
    assert.equal(skipped, 3);
  });

  it('follows a growing file: a line cut mid-write waits for its end, a shorter file starts over', () => {
    const path = join(tempDir('follow'), 'metrics.jsonl');
    const follower = new MetricsFollower(path);
    assert.deepEqual(follower.poll().records, [], 'no file yet');
    const second = step(2);
    writeFileSync(path, `${step(1)}\n${second.slice(0, 10)}`);
    assert.deepEqual(
      follower.poll().records.map((r) => r.step),
      [1],
    );
    appendFileSync(path, `${second.slice(10)}\nbroken}\n`);
    const next = follower.poll();
    assert.deepEqual(
      next.records.map((r) => r.step),
      [2],
    );
    assert.equal(next.skipped, 1);
    assert.deepEqual(follower.poll().records, [], 'nothing new');
    writeFileSync(path, `${step(7)}\n`);
    const restarted = follower.poll();
    assert.equal(restarted.reset, true);
    assert.deepEqual(
      restarted.records.map((r) => r.step),
      [7],
    );
  });

  it('tells finished, running and interrupted runs apart', () => {
    const config = { epochs: 2 };
    const epoch = (n: number, extra = {}): MetricRecord => ({ type: 'epoch', epoch: n, steps: n * 4, ...extra });
    const now = Date.now();
    assert.equal(runStatus(config, [epoch(1), epoch(2)], now - 86_400_000, now), 'finished');
    assert.equal(runStatus(config, [epoch(1, { partial: true })], now - 86_400_000, now), 'finished', 'a budget ended it');
    assert.equal(runStatus(config, [epoch(1)], now - 5_000, now), 'running');
    assert.equal(runStatus(config, [epoch(1)], now - 600_000, now), 'interrupted');
    // A run that logs every 10 minutes is still running 20 minutes after its last line.
    const slow = [0, 1, 2, 3].map((i) => ({
      type: 'step' as const,
      epoch: 1,
      step: i,
      time: new Date(now - (3 - i) * 600_000 - 1_200_000).toISOString(),
    }));
    assert.equal(runStatus(config, slow, now - 1_200_000, now), 'running');
    // An end record settles it: Ctrl-C part-way is interrupted, a spent budget finished.
    const end = (stopped: string): MetricRecord => ({ type: 'end', epoch: 1, stopped, cpuSeconds: 3 });
    assert.equal(runStatus(config, [epoch(1), end('signal')], now, now), 'interrupted');
    assert.equal(runStatus(config, [epoch(1), end('budget')], now, now), 'finished');
    assert.equal(runStatus(config, [epoch(1), end('signal'), epoch(2)], now - 600_000, now), 'finished', 'resumed to the end');
  });

  it('sends new lines of a run over server-sent events as they are written', async () => {
    const runs = tempDir('events');
    mkdirSync(join(runs, 'live'));
    writeFileSync(join(runs, 'live', 'config.json'), JSON.stringify({ task: 'rotation', backbone: 'nin4', data: 'synthetic', epochs: 1 }));
    writeFileSync(join(runs, 'live', 'metrics.jsonl'), `${step(1)}\n`);
    const studio = await studioFor({ runs });
    const controller = new AbortController();
    try {
      const response = await fetch(new URL('/api/runs/live/events', studio.url), { signal: controller.signal });
      assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      const steps: number[] = [];
      let text = '';
      const readUntil = async (count: number) => {
        while (steps.length < count) {
          const { value, done } = await reader.read();
          if (done) break;
          text += value;
          const events = text.split('\n\n');
          text = events.pop()!;
          for (const event of events) {
            const [, name, data] = /^event: (\w+)\ndata: (.*)$/m.exec(event) ?? [];
            if (name === 'metrics') steps.push(...(JSON.parse(data).records as MetricRecord[]).map((r) => r.step!));
          }
        }
      };
      await readUntil(1);
      appendFileSync(join(runs, 'live', 'metrics.jsonl'), `${step(2)}\nhalf a li`);
      await readUntil(2);
      appendFileSync(join(runs, 'live', 'metrics.jsonl'), `ne\n${step(3)}\n`);
      await readUntil(3);
      assert.deepEqual(steps, [1, 2, 3]);
    } finally {
      controller.abort();
      await studio.close();
    }
  });
});
