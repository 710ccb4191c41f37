// A run directory's logged measurements (stats.jsonl, as `train --metrics` writes it), read as curves.
//
// Training minutes leave the metric evaluations out: a tick's Timing/total_sec counts every earlier
// evaluation's Timing/metrics_sec, and the time a run spends measuring itself is not time it spends learning.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from './common.js';

export interface CurvePoint {
  kimg: number;
  /** Minutes of training up to this measurement, evaluations excluded. */
  trainingMinutes: number;
  value: number;
}

/**
 * The measurements of `metric` (its `Metrics/<metric>` entries) in a run's stats.jsonl lines, each with its kimg
 * and the training minutes before it: the last tick's Timing/total_sec at or before that kimg, less the
 * evaluations logged before that tick ended.
 */
export function metricCurve(lines: readonly Record<string, unknown>[], metric: string): CurvePoint[] {
  const key = `Metrics/${metric}`;
  const points: CurvePoint[] = [];
  let measuringSec = 0;
  let tickTrainingSec: number | null = null;
  for (const entry of lines) {
    const total = entry['Timing/total_sec'];
    if (typeof total === 'number') tickTrainingSec = total - measuringSec;
    const value = entry[key];
    const kimg = entry['Progress/kimg'];
    if (typeof value === 'number' && typeof kimg === 'number') {
      if (tickTrainingSec === null) throw new Error(`a ${key} entry at kimg ${kimg} comes before any tick's Timing/total_sec`);
      points.push({ kimg, trainingMinutes: tickTrainingSec / 60, value });
    }
    const sec = entry['Timing/metrics_sec'];
    if (typeof sec === 'number') measuringSec += sec;
  }
  return points;
}

/** A run directory's stats.jsonl, parsed; errors name the file and the line. */
export function readStats(runDir: string): Record<string, unknown>[] {
  const file = join(runDir, 'stats.jsonl');
  if (!existsSync(file)) throw new UsageError(`${file}: not found (give a run directory that \`train\` wrote)`);
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l, i) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      throw new Error(`${file}: line ${i + 1} is not JSON: ${l.slice(0, 80)}`);
    }
  });
}
