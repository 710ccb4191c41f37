// The data-efficiency study's configurations (issue 30): small-set configurations take the quiet-machine minutes
// of the fashion-mnist-5k configuration doing the same work; the class shares and the nearest training image
// the small-set measurement records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classShares, totalVariation } from '../bench/class-shares.js';
import { nearestTraining } from '../bench/nearest-neighbours.js';
import { CONFIGS, configById } from '../bench/quality-study-configs.js';
import { calibrationId, idleMinutes, trainedMinutes, type Point, type Study } from '../bench/quality-study-record.js';
import { FASHION_MNIST_SUBSETS } from '../src/data/builtin.js';
import { ArrayDataset } from '../src/data/dataset.js';

test('configuration ids are unique', () => {
  assert.equal(new Set(CONFIGS.map((c) => c.id)).size, CONFIGS.length);
});

test('the small-set configurations: both sets, real_p 1 / 0.5 / 0.25, seeds 0 and 1, each on the same work as its fashion-mnist-5k counterpart', () => {
  for (const [prefix, data] of [['fm500', 'fashion-mnist-500'], ['fm2k', 'fashion-mnist-2k']] as const)
    for (const [p, same] of [['1', 'fm-p1'], ['0.5', 'fm-p0.5'], ['0.25', 'fm-p0.25']] as const)
      for (const seed of [0, 1]) {
        const id = `${prefix}-p${p}${seed ? '-s1' : ''}`;
        const c = configById(id);
        assert.ok(c, id);
        const base = configById(same)!;
        assert.equal(c.data, data);
        assert.equal(c.smallSet?.images, FASHION_MNIST_SUBSETS[data]);
        assert.equal(c.sameWorkAs, same);
        assert.equal(calibrationId(id), same, 'the calibration on file is the 5k configuration\'s');
        assert.deepEqual(c.train, { realP: base.train.realP, seed }, 'the same real_p (and the small network\'s defaults) as the 5k configuration');
        assert.equal(c.resolution, base.resolution);
        assert.equal(c.ref, 'fashion-mnist-test', 'quality against the held-out test split');
        assert.equal(c.heldOut, 'fashion-mnist-test');
        assert.equal(c.floorSource, 'fashion-mnist-outside-5k');
      }
  // The fashion-mnist-5k configurations are as they were: no small-set fields.
  for (const c of CONFIGS.filter((c) => !c.id.startsWith('fm500') && !c.id.startsWith('fm2k'))) {
    assert.equal(c.smallSet, undefined, c.id);
    assert.equal(c.floorSource, undefined, c.id);
  }
});

test('a small-set point\'s quiet-machine minutes come from the 5k configuration\'s calibration', () => {
  const point = (kimg: number): Point => ({ at: '', minutes: 99, kimg, metrics: {}, memorisation: null as never, samplingSec: 1, load: [] });
  const study: Study = {
    format: 'patch-diffusion/quality-study@1', created: '', settings: { samples: 500, sampleSteps: 18, segmentMinutes: 8, threads: 1 }, machines: [], floors: {},
    calibration: { 'fm-p1': { at: '', imagesPerSec: 50, turns: [], loads: [] }, 'fm-p0.25': { at: '', imagesPerSec: 200, turns: [], loads: [] } },
    configs: { 'fm500-p1': { id: 'fm500-p1', runDir: null, points: [point(30)] }, 'fm2k-p0.25-s1': { id: 'fm2k-p0.25-s1', runDir: null, points: [point(24)] } },
  };
  assert.equal(trainedMinutes(study, 'fm500-p1'), 10);
  assert.equal(idleMinutes(study, 'fm2k-p0.25-s1', point(24)), 2);
  assert.equal(trainedMinutes(study, 'fm500-p0.5'), 0);
});

test('class shares and their total-variation distance', () => {
  assert.deepEqual(classShares([0, 0, 1, 9]), [0.5, 0.25, 0, 0, 0, 0, 0, 0, 0, 0.25]);
  assert.equal(totalVariation([0.5, 0.5], [0.5, 0.5]), 0);
  assert.equal(totalVariation([1, 0], [0, 1]), 1);
  assert.ok(Math.abs(totalVariation([0.5, 0.25, 0.25], [0.25, 0.25, 0.5]) - 0.25) < 1e-12);
});

test('nearestTraining: each query\'s nearest training image and its RMS pixel distance', () => {
  // Three 2×2 grey training images: all 0, all 255, a half-lit one.
  const train = new ArrayDataset({ name: 't', resolution: 2, channels: 1, pixels: Uint8Array.from([0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0]) });
  const queries = { data: Uint8Array.from([250, 255, 255, 255, 0, 0, 0, 51, 255, 255, 0, 0]), count: 3, channels: 1, height: 2, width: 2 };
  const { index, distance } = nearestTraining(queries, train, { device: 'cpu' });
  assert.deepEqual([...index], [1, 0, 2]);
  assert.ok(Math.abs(distance[0]! - Math.sqrt((5 / 255) ** 2 / 4)) < 1e-5);
  assert.ok(Math.abs(distance[1]! - Math.sqrt(0.2 ** 2 / 4)) < 1e-5);
  assert.ok(Math.abs(distance[2]!) < 1e-3);
});
