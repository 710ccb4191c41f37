// What a resume may change and what it may not, said out loud: settings that
// come from the training state are refused by name when given with another
// value; the ones a resume may change are reported; paths are stored
// absolute; statistics written past the state by an earlier process are
// superseded, as TensorBoard supersedes them.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isBuiltinName } from '../data/builtin.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { TrainOptionsInput } from './options.js';
import { RESUME_OVERRIDABLE } from './settings.js';

/** The command-line flag of a setting (lossScaling is train.py's --ls). */
export function flagOf(key: string): string {
  return key === 'lossScaling' ? '--ls' : `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Checks a resume's settings against the saved ones: a setting the state
 * fixes, given with another value, is an error naming it; `data` may point
 * elsewhere only when the saved path no longer exists (the data moved).
 * Returns the changes a resume may make, for the log ("--duration 0.2 (was 0.1)").
 */
export function checkResumeSettings(given: Partial<TrainOptionsInput>, saved: Partial<TrainOptionsInput>): string[] {
  const free = new Set<string>([...RESUME_OVERRIDABLE, 'resume', 'dryRun']);
  const refused: string[] = [];
  const changes: string[] = [];
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    const was = (saved as Record<string, unknown>)[key];
    if (free.has(key)) {
      if (key !== 'resume' && key !== 'dryRun' && !same(value, was)) changes.push(`${flagOf(key)} ${JSON.stringify(value)} (was ${JSON.stringify(was)})`);
      continue;
    }
    if (key === 'data' && typeof was === 'string' && !isBuiltinName(was) && !existsSync(was) && typeof value === 'string') {
      changes.push(`--data ${value} (was ${was}, which is gone)`);
      continue;
    }
    if (!same(value, was)) refused.push(`${flagOf(key)} ${JSON.stringify(value)}: cannot change when resuming (the run's is ${JSON.stringify(was)})`);
  }
  if (refused.length)
    throw new Error(`invalid training options:\n${refused.join('\n')}\na resume may change only ${RESUME_OVERRIDABLE.map(flagOf).join(', ')} (and --data when the saved folder is gone)`);
  return changes;
}

/** The settings of a new run with the paths it reads (data, vae, transfer) made absolute. */
export function absolutePaths(o: TrainOptionsInput): TrainOptionsInput {
  const abs = (p: string | undefined) => (p === undefined ? p : resolve(p));
  return {
    ...o,
    data: isBuiltinName(o.data) ? o.data : resolve(o.data),
    ...(o.vae !== undefined ? { vae: abs(o.vae) } : {}),
    ...(o.transfer !== undefined ? { transfer: abs(o.transfer) } : {}),
  };
}

/**
 * Drops the stats.jsonl entries past `kimg` (an earlier process trained past
 * the state being resumed, then died before its next state): the resumed run
 * writes those ticks again. Returns how many were dropped.
 */
export function supersedeStats(runDir: string, kimg: number): number {
  const file = join(runDir, 'stats.jsonl');
  if (!existsSync(file)) return 0;
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim());
  const kept = lines.filter((l) => {
    try {
      const k = (JSON.parse(l) as Record<string, unknown>)['Progress/kimg'];
      return typeof k !== 'number' || k <= kimg + 1e-9;
    } catch {
      return true; // not ours to judge
    }
  });
  if (kept.length === lines.length) return 0;
  writeFileAtomic(file, [new TextEncoder().encode(kept.map((l) => `${l}\n`).join(''))]);
  return lines.length - kept.length;
}

/** The newest network snapshot in a run directory, or null. */
export function newestSnapshot(runDir: string): string | null {
  const snaps = readdirSync(runDir).filter((f) => /^network-snapshot-\d{6}\.safetensors$/.test(f)).sort();
  return snaps.length ? join(runDir, snaps.at(-1)!) : null;
}
