// Action classification on clips: person folds from file names, segments, the probes per fold, and
// the frame-order verification check.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { manualSeed, setNumThreads, type Tensor } from '@pretext/torch';
import type { Batch } from '../../src/data/loader.js';
import { clipClasses, clipSegments, evaluateClips, leaveOneGroupOut, personOf, verificationAccuracy } from '../../src/eval/clips.js';
import { SmallAlexNet } from '../../src/models/alexnet.js';
import { frameOrderTask, tupleLabels } from '../../src/tasks/frame-order.js';
import type { TaskInstance } from '../../src/tasks/task.js';
import { clipStore, FRAMES, numberedClips } from '../tasks/clip-store.js';

setNumThreads(1);

/** The office-gestures names: action a, person p, trial t. */
const officeNames = [1, 2, 3].flatMap((a) => [1, 2, 3].flatMap((p) => [1, 2, 3].map((t) => `action${a}/PS7A${a}P${p}T${t}.avi`)));

test('leave one person out: the person comes from the file name, each fold tests one person on the others', () => {
  assert.equal(personOf('action2/PS7A2P3T1.avi'), 'P3');
  assert.throws(() => personOf('again.mkv'), /P\{n\}T\{n\}/);
  const folds = leaveOneGroupOut(officeNames.map(personOf));
  assert.deepEqual(
    folds.map((f) => f.group),
    ['P1', 'P2', 'P3'],
  );
  for (const fold of folds) {
    assert.equal(fold.test.length, 9);
    assert.equal(fold.train.length, 18);
    assert.ok([...fold.test].every((i) => officeNames[i].includes(`${fold.group}T`)));
    assert.ok([...fold.train].every((i) => !officeNames[i].includes(`${fold.group}T`)));
  }
  assert.deepEqual(
    [...folds.flatMap((f) => [...f.test])].sort((a, b) => a - b),
    [...officeNames.keys()],
  );
});

test('segments: a clip per person fold, or its two halves; clips without labels are their own class', () => {
  const store = clipStore(numberedClips(3));
  const halves = clipSegments(store, 'halves');
  assert.deepEqual(
    halves.slice(0, 2).map((s) => [s.clip, s.group, s.start, s.count]),
    [
      [0, 'first half', 0, 11],
      [0, 'second half', 11, 10],
    ],
  );
  assert.throws(() => clipSegments(store, 'person'), /P\{n\}T\{n\}/);
  assert.deepEqual(clipClasses(store).labels, Int32Array.from([0, 1, 0]));
  const unlabeled = { ...store, clips: store.clips!.map((c) => ({ ...c, label: -1 })) };
  assert.deepEqual(clipClasses(unlabeled), { labels: Int32Array.from([0, 1, 2]), classNames: ['c0/clip0', 'c1/clip1', 'c2/clip2'] });
});

/** The office clips as moving squares: `look(action, person)` sets a clip's background and direction. */
function officeStore(look: (action: number, person: number) => { background: number; direction?: number }) {
  const specs = officeNames.map((path) => {
    const [a, p] = [Number(/A(\d)/.exec(path)![1]), Number(/P(\d)T/.exec(path)![1])];
    return { path, label: a - 1, ...look(a, p) };
  });
  return clipStore(specs, ['action1', 'action2', 'action3']);
}

test('evaluateClips: per-person folds over frames and clip means, each fold tested only on its person', async () => {
  // The action sets the background; the person shifts it a little: actions are told apart across people.
  const store = officeStore((a, p) => ({ background: 60 * a + 6 * p }));
  manualSeed(0);
  const [evaluation] = await evaluateClips(new SmallAlexNet({ width: 8 }), store, { split: 'person', normalization: 'dataset' });
  assert.equal(evaluation.block, 'conv5');
  assert.deepEqual(
    evaluation.folds.map((f) => [
      f.group,
      f.scores.frames.linear.testSamples,
      f.scores.frames.knn.trainSamples,
      f.scores.mean.linear.testSamples,
    ]),
    [
      ['P1', 9 * FRAMES, 18 * FRAMES, 9],
      ['P2', 9 * FRAMES, 18 * FRAMES, 9],
      ['P3', 9 * FRAMES, 18 * FRAMES, 9],
    ],
  );
  for (const view of ['frames', 'mean'] as const) {
    for (const score of Object.values(evaluation.mean[view])) assert.ok(score > 90, `${view}: top-1 ${score}`);
  }
});

test("evaluateClips: a clip's change from its first frame keeps the motion across people who look different", async () => {
  // The action sets where the square moves; the person sets the background, a different one for each.
  const store = officeStore((a, p) => ({ background: 40 + 40 * p, direction: a - 1 }));
  manualSeed(0);
  const [evaluation] = await evaluateClips(new SmallAlexNet({ width: 8 }), store, { split: 'person', normalization: 'dataset' });
  const { mean, change } = evaluation.mean;
  assert.ok(change.linear >= 85 && change.knn >= 85, `change: linear ${change.linear}, kNN ${change.knn}`);
  assert.ok(change.linear > mean.linear + 20, `linear: change ${change.linear} vs mean ${mean.linear}`);
});

/** A stand-in for a trained model: answers right (or always "shuffled") and records the frames it saw. */
function oracle(right: boolean, seen: number[]): TaskInstance {
  const instance = {
    modules: {},
    prepare(batch: Batch) {
      seen.push(...batch.indices.toArray());
      return { inputs: batch.images, targets: tupleLabels(batch.indices) };
    },
    answers(prepared: { targets: Tensor }) {
      return prepared.targets.toArray().map((target) => {
        const predicted = right ? target : 0;
        return { target, predicted, correct: predicted === target };
      });
    },
  };
  return instance as unknown as TaskInstance;
}

test('verificationAccuracy: half the tuples in order, from the chosen clips only', async () => {
  const store = clipStore(numberedClips(6));
  const backbone = new SmallAlexNet({ width: 4 });
  const options = { sampling: frameOrderTask.options.parse({}), normalization: 'dataset' as const, tuples: 256 };
  const seen: number[] = [];
  const perfect = await verificationAccuracy(oracle(true, seen), backbone, store, { ...options, clips: /clip[45]\.avi$/ });
  assert.deepEqual([perfect.tuples, perfect.acc, perfect.balancedAcc], [256, 1, 1]);
  assert.ok(
    seen.every((i) => Math.floor(i / FRAMES) >= 4),
    'a tuple from a clip not chosen',
  );
  const shuffledOnly = await verificationAccuracy(oracle(false, []), backbone, store, options);
  assert.equal(shuffledOnly.balancedAcc, 0.5);
  assert.ok(Math.abs(shuffledOnly.acc - 0.5) < 0.08, `${shuffledOnly.acc} of tuples shuffled`);
});
