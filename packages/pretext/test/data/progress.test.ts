import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, Progress } from '../../src/data/index.js';

function fakeStream(isTTY: boolean): { write: (text: string) => void; isTTY: boolean; output: string[] } {
  const output: string[] = [];
  return { write: (text) => output.push(text), isTTY, output };
}

test('renders label, bar, count, rate and ETA', () => {
  let now = 0;
  const progress = new Progress('decode', 10, { stream: fakeStream(false), barWidth: 10, now: () => now });
  now = 2000;
  progress.update(4);
  assert.equal(progress.render(), 'decode [####......] 4/10 2.0/s ETA 0:03');
  progress.update(10);
  assert.equal(progress.render(), 'decode [##########] 10/10 5.0/s in 0:02');
  assert.equal(formatDuration(3725), '1:02:05');
});

test('a bar resumed part-way shows the items done before but rates only the new ones', () => {
  let now = 0;
  const progress = new Progress('epoch 2/10', 390, { stream: fakeStream(false), barWidth: 10, now: () => now, startAt: 337 });
  now = 2000;
  progress.update(341);
  assert.equal(progress.render(), 'epoch 2/10 [#########.] 341/390 2.0/s ETA 0:25');
});

test('without a TTY prints throttled plain lines and a final line', () => {
  let now = 0;
  const stream = fakeStream(false);
  const progress = new Progress('x', 100, { stream, lineMs: 5000, now: () => now });
  for (let i = 1; i <= 100; i++) {
    now = i * 100; // 10 s in total
    progress.update(i);
  }
  progress.finish();
  assert.ok(stream.output.every((line) => line.endsWith('\n') && !line.includes('\r')));
  assert.equal(stream.output.length, 3); // first update (0.1 s), 5 s later (5.1 s), final
  assert.match(stream.output[2], /^x \[#+\] 100\/100 10\.0\/s in 0:10\n$/);
});

test('on a TTY redraws in place and keeps logged lines above the bar', () => {
  let now = 0;
  const stream = fakeStream(true);
  const progress = new Progress('y', 4, { stream, redrawMs: 100, now: () => now });
  progress.update(1);
  progress.update(2); // throttled: same instant
  assert.equal(stream.output.length, 1);
  assert.match(stream.output[0], /^\ry \[.*\] 1\/4 .*\x1b\[K$/);
  progress.log('warning: something');
  assert.deepEqual(stream.output.slice(1, 3), ['\r\x1b[K', 'warning: something\n']);
  now = 500;
  progress.update(4);
  progress.finish();
  assert.equal(stream.output.at(-1), '\n');
});
