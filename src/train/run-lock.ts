// One writer per run directory. `train` (a new run or a resume) holds
// <run>/.lock while it runs: a second `train --resume` of the same run would
// interleave its log, write every tick twice into stats.jsonl and race for
// the snapshots. The file names its owner (pid, host, start time), so a lock
// left by a killed process on this machine is seen to be stale and taken
// over; one held by a live process, or by another machine, is an error that
// says whose it is.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const LOCK_FILE = '.lock';

interface LockOwner {
  pid: number;
  host: string;
  started: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but is another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class RunLock {
  private constructor(readonly path: string) {}

  /** Takes the run directory's lock, or throws naming who holds it. */
  static acquire(runDir: string): RunLock {
    const path = join(runDir, LOCK_FILE);
    const me: LockOwner = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx');
        try {
          writeSync(fd, JSON.stringify(me) + '\n');
        } finally {
          closeSync(fd);
        }
        return new RunLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot lock the run directory ${runDir}: ${(err as Error).message}`);
      }
      let owner: LockOwner | null = null;
      try {
        owner = JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
      } catch {
        /* unreadable: half-written by a process killed at that moment, so stale */
      }
      const stale = !owner || (owner.host === me.host && !alive(owner.pid));
      if (!stale) {
        const where = owner!.host === me.host ? `process ${owner!.pid}` : `process ${owner!.pid} on ${owner!.host}`;
        throw new Error(
          `the run directory ${runDir} is in use by ${where} (since ${owner!.started}): one training process per run. ` +
            `If that process is gone, delete ${path}`,
        );
      }
      rmSync(path, { force: true });
    }
    throw new Error(`cannot lock the run directory ${runDir}: another process took it at the same moment`);
  }

  release(): void {
    rmSync(this.path, { force: true });
  }
}
