// A run's logged metrics as curves: training minutes leave out every evaluation logged before the tick, and a
// stats.jsonl that is missing or broken is named in the error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { metricCurve, readStats } from '../bench/run-stats.js';
import { cleanup, makeTempDir } from './helpers/train-fixtures.js';

// Three ticks of 60 s of training each; the evaluations after them take 6, 9 and 12 s.
const LINES = [
  { 'Progress/tick': 0, 'Progress/kimg': 32, 'Timing/total_sec': 60 },
  { 'Progress/kimg': 32, 'Metrics/swd': 90, 'Metrics/fd-classifier': 300, 'Timing/metrics_sec': 6 },
  { 'Progress/tick': 1, 'Progress/kimg': 64, 'Timing/total_sec': 126 },
  { 'Progress/kimg': 64, 'Metrics/swd': 70, 'Timing/metrics_sec': 9 },
  { 'Progress/tick': 2, 'Progress/kimg': 90.5, 'Timing/total_sec': 195 },
  { 'Progress/kimg': 90.5, 'Metrics/swd': 60, 'Timing/metrics_sec': 12 },
];

test('training minutes exclude the evaluations logged before each tick', () => {
  assert.deepEqual(metricCurve(LINES, 'swd'), [
    { kimg: 32, trainingMinutes: 1, value: 90 },
    { kimg: 64, trainingMinutes: 2, value: 70 },
    { kimg: 90.5, trainingMinutes: 3, value: 60 },
  ]);
  assert.deepEqual(metricCurve(LINES, 'fd-classifier'), [{ kimg: 32, trainingMinutes: 1, value: 300 }]);
  assert.deepEqual(metricCurve(LINES, 'kid-classifier'), []);
});

test('a measurement before any tick is an error, not a point at minute 0', () => {
  assert.throws(() => metricCurve([{ 'Progress/kimg': 0, 'Metrics/swd': 100 }], 'swd'), /before any tick's Timing\/total_sec/);
});

test('readStats names the file that is missing or the line that is not JSON', () => {
  const dir = makeTempDir('run-stats');
  try {
    assert.throws(() => readStats(dir), (e: Error) => e.message.includes(join(dir, 'stats.jsonl')) && /not found/.test(e.message));
    writeFileSync(join(dir, 'stats.jsonl'), JSON.stringify(LINES[0]) + '\n{"Progress/kimg": 3\n');
    assert.throws(() => readStats(dir), /stats\.jsonl: line 2 is not JSON/);
    writeFileSync(join(dir, 'stats.jsonl'), LINES.map((l) => JSON.stringify(l)).join('\n') + '\n');
    assert.equal(readStats(dir).length, LINES.length);
  } finally {
    cleanup(dir);
  }
});
