// The quality study's record (study.json): the points measured, the calibrations, and what is read from
// them (quiet-machine minutes, the metric at a budget, the time to reach a level). Two study commands
// advancing different configurations can share one record.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PatchSchedule } from '../src/diffusion/patches.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { nowIso, UsageError } from './common.js';
import type { MemorisationReport } from './nearest-neighbours.js';
import { configById, type StudyConfig } from './quality-study-configs.js';

export interface Point {
  at: string;
  /** Training wall-clock so far (the run's own clock: training only, not evaluation; slowed by other processes). */
  minutes: number;
  kimg: number;
  metrics: Record<string, number>;
  memorisation: MemorisationReport;
  samplingSec: number;
  load: number[];
  /** A small set's (issue 30): the classifier's class shares of the samples, in bench/class-shares.ts CLASSES' order. */
  classShares?: number[];
}
export interface ConfigRecord {
  id: string;
  runDir: string | null;
  points: Point[];
}
export interface Floor {
  source: string;
  samples: number;
  metrics: Record<string, number>;
}
/** A configuration's training speed on the quiet machine: the minutes axis divides kimg by it. */
export interface Calibration {
  at: string;
  /** Median images/s over the measured ticks of every calibration turn (the first tick, warm-up, left out). */
  imagesPerSec: number;
  /** Each turn's median images/s, in the order measured. */
  turns: number[];
  /** Load average (1, 5, 15 min) before each turn. */
  loads: number[][];
  /** Calibrated after the others: the factor the measured figure was scaled by, and the anchors' speed measured beside it. */
  scaledBy?: number;
  /** A progressive configuration's images/s at each patch size (its speed changes along the schedule). */
  stageImagesPerSec?: Record<string, number>;
  anchorsNow?: Record<string, number>;
}
export interface Study {
  format: 'patch-diffusion/quality-study@1';
  created: string;
  settings: { samples: number; sampleSteps: number; segmentMinutes: number; threads: number };
  machines: string[];
  configs: Record<string, ConfigRecord>;
  floors: Record<string, Floor>;
  calibration?: Record<string, Calibration>;
}

/** Minutes the point's training takes on the quiet machine (kimg ÷ calibrated throughput); the run's own clock without one. */
export function idleMinutes(study: Study, id: string, p: Pick<Point, 'kimg' | 'minutes'>): number {
  const cal = calibrationOf(study, id);
  if (!cal) return p.minutes;
  const config = configById(id);
  return cal.stageImagesPerSec && config?.train.progressive ? progressiveMinutes(config, cal.stageImagesPerSec, p.kimg) : (p.kimg * 1000) / cal.imagesPerSec / 60;
}

/** The patch-size schedule of a progressive configuration (the training's own). */
export const progressiveSchedule = (c: StudyConfig) => new PatchSchedule({ resolution: c.resolution, realP: c.train.realP as number, progressive: true });

/**
 * Quiet-machine minutes of a progressive run's first `kimg`: each kimg at the speed of the patch size the
 * schedule holds there (it changes size only at whole kimg: f = floor(cur_nimg / 1000) / total_kimg).
 */
export function progressiveMinutes(c: StudyConfig, stageImagesPerSec: Record<string, number>, kimg: number): number {
  const schedule = progressiveSchedule(c);
  const totalNimg = (c.train.duration as number) * 1e6;
  let sec = 0;
  for (let k = 0; k < kimg; k++) {
    const size = schedule.progressiveSize(k * 1000, totalNimg);
    const rate = stageImagesPerSec[size];
    if (!rate) throw new Error(`${c.id}: no calibrated speed at patch size ${size}`);
    sec += (Math.min(1, kimg - k) * 1000) / rate;
  }
  return sec / 60;
}
/** A configuration with a fixed length (the progressive schedule's) that has trained all of it. */
export function scheduleDone(study: Study, c: StudyConfig): boolean {
  const duration = c.train.duration as number | undefined;
  const last = study.configs[c.id]?.points.at(-1);
  return duration !== undefined && last !== undefined && last.kimg >= duration * 1000;
}
/** The configuration's calibrated throughput (its own, or that of the configuration doing the same work). */
export const calibrationId = (id: string): string => configById(id)?.sameWorkAs ?? id;
export const calibrationOf = (study: Study, id: string): Calibration | undefined => study.calibration?.[calibrationId(id)];
export const trainedMinutes = (study: Study, id: string): number => {
  const last = study.configs[id]?.points.at(-1);
  return last ? idleMinutes(study, id, last) : 0;
};

export function readStudy(dir: string, settings: Study['settings']): Study {
  const file = join(dir, 'study.json');
  if (!existsSync(file)) return { format: 'patch-diffusion/quality-study@1', created: nowIso(), settings, machines: [], configs: {}, floors: {} };
  const s = JSON.parse(readFileSync(file, 'utf8')) as Study;
  if (s.format !== 'patch-diffusion/quality-study@1') throw new UsageError(`${file} is not a quality-study record`);
  for (const k of ['samples', 'sampleSteps'] as const)
    if (s.settings[k] !== settings[k]) throw new UsageError(`${file} was measured with --${k === 'samples' ? 'samples' : 'sample-steps'} ${s.settings[k]}; continue with the same value (or a new --study)`);
  return s;
}
/** What one study command writes: the configurations it advances and the calibrations it measured. */
export interface Ownership {
  configs: Set<string>;
  calibrations: Set<string>;
}

/**
 * Writes this command's part of the record into study.json as the file is now, and takes the rest from there,
 * so two study commands advancing different configurations can share one folder (two at --threads 1 train
 * about 17% more images/s in all than one at 2 threads on the 2-core machine). A lock folder orders the writers.
 */
export function saveStudy(dir: string, s: Study, own: Ownership): void {
  const file = join(dir, 'study.json');
  withLock(join(dir, 'study.lock'), () => {
    const disk = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Study) : s;
    const merged: Study = {
      ...disk,
      machines: [...new Set([...disk.machines, ...s.machines])],
      floors: mergeFloors(disk.floors, s.floors),
      configs: { ...disk.configs, ...Object.fromEntries([...own.configs].filter((id) => s.configs[id]).map((id) => [id, s.configs[id]!])) },
      calibration: { ...s.calibration, ...disk.calibration, ...Object.fromEntries([...own.calibrations].map((id) => [id, s.calibration![id]!])) },
    };
    writeFileAtomic(file, [new TextEncoder().encode(JSON.stringify(merged, null, 1) + '\n')]);
    Object.assign(s, merged);
  });
}

/**
 * The floors of the file and of this command, per data set: the union of their metrics, this command's figure
 * where both have one (a floor measured again with --detector adds fid-inception to the one on file).
 */
function mergeFloors(disk: Study['floors'], mine: Study['floors']): Study['floors'] {
  const merged: Study['floors'] = { ...mine, ...disk };
  for (const [data, f] of Object.entries(mine)) {
    const d = disk[data];
    if (d) merged[data] = { ...d, metrics: { ...d.metrics, ...f.metrics } };
  }
  return merged;
}

/** Runs `fn` holding the lock folder; one left by a killed command (older than a minute) is taken over. */
export function withLock(lock: string, fn: () => void): void {
  const wait = new Int32Array(new SharedArrayBuffer(4));
  for (let tries = 0; ; tries++) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const held = statSync(lock, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > 60_000) rmSync(lock, { recursive: true, force: true });
      if (tries > 1200) throw new Error(`${lock}: held for over a minute by another study command`);
      Atomics.wait(wait, 0, 0, 50);
    }
  }
  try {
    fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Quiet-machine minutes at which a configuration's curve first reaches `target` (linear between measurements), or null. */
export function minutesToReach(study: Study, id: string, metric: string, target: number): number | null {
  const points = study.configs[id]!.points;
  const at = (p: Point) => idleMinutes(study, id, p);
  for (let i = 0; i < points.length; i++) {
    const v = points[i]!.metrics[metric];
    if (v === undefined || !(v <= target)) continue;
    if (i === 0) return at(points[0]!);
    const a = points[i - 1]!, b = points[i]!;
    const va = a.metrics[metric]!;
    return at(a) + ((va - target) / (va - v)) * (at(b) - at(a));
  }
  return null;
}

/**
 * A metric at `minutes` on the quiet machine, linear between the measurements around it; null outside them.
 * A measurement within 2% of the budget stands for it: a segment ends at the first whole step past its kimg.
 */
export function metricAt(study: Study, id: string, metric: string, minutes: number): number | null {
  const points = study.configs[id]!.points.filter((p) => p.metrics[metric] !== undefined);
  const near = points.find((p) => Math.abs(idleMinutes(study, id, p) - minutes) <= 0.02 * minutes);
  if (near) return near.metrics[metric]!;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!, ta = idleMinutes(study, id, a);
    const b = points[i]!, tb = idleMinutes(study, id, b);
    if (ta < minutes && minutes < tb) return a.metrics[metric]! + ((minutes - ta) / (tb - ta)) * (b.metrics[metric]! - a.metrics[metric]!);
  }
  return null;
}
