// taskExamples: what `pretext show` and the studio's task cards draw, from the task contract alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getTask } from '../../src/tasks/registry.js';
import { taskExamples } from '../../src/viz/examples.js';
import { randomStore } from '../eval/fixtures.js';

describe('taskExamples', () => {
  const store = randomStore(160, 16, 3, 4);

  it('draws other samples with another seed, in display range', async () => {
    const draw = async (seed: number) => {
      const { picture, summary } = await taskExamples({ task: getTask('rotation'), store, count: 3, seed });
      try {
        assert.equal(summary, undefined, 'no answers without a trained model');
        assert.deepEqual(picture.panels.shape, [12, 3, 16, 16], 'three images in four rotations');
        assert.ok(picture.panels.min().item() >= 0 && picture.panels.max().item() <= 1);
        return picture.panels.sum().item();
      } finally {
        picture.panels.dispose();
      }
    };
    assert.equal(await draw(1), await draw(1));
    assert.notEqual(await draw(1), await draw(2));
  });

  it("runs a fresh model's epoch-start hook first, so that DeepCluster's examples carry clusters", async () => {
    const { picture } = await taskExamples({ task: getTask('deepcluster'), store, count: 4, seed: 0 });
    picture.panels.dispose();
    assert.equal(picture.captions.length, 4);
    for (const caption of picture.captions) {
      const [, k] = /^cluster (\d+)$/.exec(caption) ?? [];
      assert.ok(k !== undefined && Number(k) < 100, caption);
    }
  });
});
