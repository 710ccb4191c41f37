// The quality study's record: the quiet-machine minutes axis (a calibration, shared by configurations doing the
// same work), reading a metric at a budget, the time to reach a level, and two study commands writing one
// study.json without losing each other's points.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import {
  idleMinutes, metricAt, minutesToReach, readStudy, saveStudy, trainedMinutes, withLock, type Point, type Study,
} from '../bench/quality-study-record.js';
import { cleanup, makeTempDir } from './helpers/train-fixtures.js';

const SETTINGS = { samples: 500, sampleSteps: 18, segmentMinutes: 8, threads: 2 };

const point = (kimg: number, fd: number, minutes = kimg): Point => ({
  at: '2026-12-03T00:00:00Z', minutes, kimg, metrics: { 'fd-classifier': fd }, memorisation: null as never, samplingSec: 1, load: [0, 0, 0],
});

function study(): Study {
  return {
    format: 'patch-diffusion/quality-study@1', created: '2026-12-03T00:00:00Z', settings: SETTINGS, machines: ['m'], floors: {},
    // 100 images/s: 6 kimg is one minute.
    calibration: { 'fm-p1': { at: '', imagesPerSec: 100, turns: [100], loads: [] } },
    configs: {
      'fm-p1': { id: 'fm-p1', runDir: null, points: [point(6, 300), point(18, 200), point(30, 150)] },
      'fm-p1-s1': { id: 'fm-p1-s1', runDir: null, points: [point(12, 250)] },
      'fm-p0.5-prog': { id: 'fm-p0.5-prog', runDir: null, points: [point(40, 220, 7.5)] },
    },
  };
}

test('quiet-machine minutes: kimg over the calibrated rate, a second seed on its first seed\'s rate, the own clock without one', () => {
  const s = study();
  assert.equal(idleMinutes(s, 'fm-p1', { kimg: 18, minutes: 99 }), 3);
  assert.equal(trainedMinutes(s, 'fm-p1'), 5);
  assert.equal(trainedMinutes(s, 'fm-p1-s1'), 2, 'fm-p1-s1 does the same work as fm-p1');
  assert.equal(trainedMinutes(s, 'fm-p0.5-prog'), 7.5, 'no calibration: the run\'s own clock');
  assert.equal(trainedMinutes(s, 'fm-p0.25'), 0);
});

test('a progressive run\'s minutes: each kimg at the speed of the patch size its schedule holds there', () => {
  const s = study();
  s.calibration!['fm-p0.5-prog'] = { at: '', imagesPerSec: 0, turns: [], loads: [], stageImagesPerSec: { 8: 300, 16: 150, 32: 50 } };
  // Over 80 kimg at real_p 0.5: 8×8 while floor(kimg) / 80 ≤ 0.2 (17 kimg), 16×16 while ≤ 0.5 (24 kimg), then 32×32.
  const at = (kimg: number) => idleMinutes(s, 'fm-p0.5-prog', { kimg, minutes: 99 });
  assert.ok(Math.abs(at(80) - (17_000 / 300 + 24_000 / 150 + 39_000 / 50) / 60) < 1e-9);
  assert.ok(Math.abs(at(10.5) - 10_500 / 300 / 60) < 1e-9);
  assert.ok(Math.abs(at(20) - (17_000 / 300 + 3_000 / 150) / 60) < 1e-9);
});

test('a metric at a budget is linear between measurements and absent outside them; the time to reach a level likewise', () => {
  const s = study();
  // Points at 1, 3 and 5 minutes: FD 300, 200, 150.
  assert.equal(metricAt(s, 'fm-p1', 'fd-classifier', 3), 200);
  assert.equal(metricAt(s, 'fm-p1', 'fd-classifier', 2), 250);
  assert.equal(metricAt(s, 'fm-p1', 'fd-classifier', 4.5), 162.5);
  assert.equal(metricAt(s, 'fm-p1', 'fd-classifier', 0.5), null);
  assert.equal(metricAt(s, 'fm-p1', 'fd-classifier', 6), null);
  assert.equal(metricAt(s, 'fm-p1', 'kid-classifier', 3), null);
  // A measurement within 2% of the budget stands for it (fm-p1-s1's only point is at 2 minutes).
  assert.equal(metricAt(s, 'fm-p1-s1', 'fd-classifier', 1.97), 250);
  assert.equal(metricAt(s, 'fm-p1-s1', 'fd-classifier', 1.9), null);
  assert.equal(metricAt(s, 'fm-p1', 'fd-classifier', 5.05), 150);
  assert.equal(minutesToReach(s, 'fm-p1', 'fd-classifier', 225), 2.5);
  assert.equal(minutesToReach(s, 'fm-p1', 'fd-classifier', 400), 1, 'reached at the first measurement');
  assert.equal(minutesToReach(s, 'fm-p1', 'fd-classifier', 100), null);
});

test('two study commands share one record: each writes its own configurations and calibrations, and reads the other\'s', (t) => {
  const dir = makeTempDir('quality-study-record');
  t.after(() => cleanup(dir));
  const a = readStudy(dir, SETTINGS);
  a.calibration = { 'fm-p0.25': { at: '', imagesPerSec: 200, turns: [], loads: [] } };
  saveStudy(dir, a, { configs: new Set(), calibrations: new Set(['fm-p0.25']) });
  // Command A advances fm-p0.1, command B fm-p1-s1; both start from the same file.
  const b = readStudy(dir, SETTINGS);
  a.configs['fm-p0.1'] = { id: 'fm-p0.1', runDir: '/runs/a', points: [point(10, 400)] };
  a.calibration!['fm-p0.1'] = { at: '', imagesPerSec: 150, turns: [], loads: [] };
  saveStudy(dir, a, { configs: new Set(['fm-p0.1']), calibrations: new Set(['fm-p0.1']) });
  b.configs['fm-p1-s1'] = { id: 'fm-p1-s1', runDir: '/runs/b', points: [point(5, 500)] };
  b.floors['fashion-mnist-5k'] = { source: 'fashion-mnist-test', samples: 500, metrics: { swd: 1 } };
  saveStudy(dir, b, { configs: new Set(['fm-p1-s1']), calibrations: new Set() });
  const disk = JSON.parse(readFileSync(join(dir, 'study.json'), 'utf8')) as Study;
  assert.deepEqual(Object.keys(disk.configs).sort(), ['fm-p0.1', 'fm-p1-s1']);
  assert.equal(disk.calibration!['fm-p0.1']!.imagesPerSec, 150, 'B, which never saw it, kept A\'s calibration');
  assert.equal(disk.calibration!['fm-p0.25']!.imagesPerSec, 200);
  assert.equal(disk.floors['fashion-mnist-5k']!.metrics.swd, 1);
  assert.deepEqual(b.configs['fm-p0.1']!.points, a.configs['fm-p0.1']!.points, 'B now plots A\'s points too');
  // A's next point does not drop B's configuration or its floor.
  a.configs['fm-p0.1']!.points.push(point(20, 300));
  saveStudy(dir, a, { configs: new Set(['fm-p0.1']), calibrations: new Set(['fm-p0.1']) });
  const after = JSON.parse(readFileSync(join(dir, 'study.json'), 'utf8')) as Study;
  assert.equal(after.configs['fm-p0.1']!.points.length, 2);
  assert.equal(after.configs['fm-p1-s1']!.points.length, 1);
  assert.ok(after.floors['fashion-mnist-5k']);
  // A record measured with other settings is refused, by name.
  assert.throws(() => readStudy(dir, { ...SETTINGS, samples: 200 }), /measured with --samples 500/);
});

test('a floor measured again with --detector adds fid-inception; a command holding the older floor keeps it', (t) => {
  const dir = makeTempDir('quality-study-floors');
  t.after(() => cleanup(dir));
  const a = readStudy(dir, SETTINGS);
  a.floors.emoji = { source: 'emoji', samples: 300, metrics: { swd: 15.7 } };
  saveStudy(dir, a, { configs: new Set(), calibrations: new Set() });
  const stale = readStudy(dir, SETTINGS);
  const withFid = readStudy(dir, SETTINGS);
  withFid.floors.emoji = { source: 'emoji', samples: 300, metrics: { swd: 15.7, 'fid-inception': 3.2 } };
  saveStudy(dir, withFid, { configs: new Set(), calibrations: new Set() });
  const read = () => (JSON.parse(readFileSync(join(dir, 'study.json'), 'utf8')) as Study).floors.emoji!.metrics;
  assert.deepEqual(read(), { swd: 15.7, 'fid-inception': 3.2 });
  saveStudy(dir, stale, { configs: new Set(), calibrations: new Set() });
  assert.deepEqual(read(), { swd: 15.7, 'fid-inception': 3.2 }, 'the command that read the floor before FID was added did not drop it');
  assert.equal(stale.floors.emoji!.metrics['fid-inception'], 3.2, 'and now holds it');
});

test('the record\'s lock: released after use and after an error; one left by a killed command is taken over', (t) => {
  const dir = makeTempDir('quality-study-lock');
  t.after(() => cleanup(dir));
  const lock = join(dir, 'study.lock');
  let ran = 0;
  withLock(lock, () => ran++);
  assert.throws(() => withLock(lock, () => { throw new Error('inside'); }), /inside/);
  withLock(lock, () => ran++);
  assert.equal(ran, 2, 'the lock was free again after the error');
  mkdirSync(lock);
  const old = new Date(Date.now() - 5 * 60_000);
  utimesSync(lock, old, old);
  withLock(lock, () => ran++);
  assert.equal(ran, 3);
});
