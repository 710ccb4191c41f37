// Writing files so that a crash, a kill or a full disk never leaves a
// half-written file under the final name: write a temporary file beside it,
// flush it to disk, then rename over the target (atomic on POSIX).
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

export function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (const chunk of chunks) {
      let offset = 0;
      while (offset < chunk.length) offset += writeSync(fd, chunk, offset, chunk.length - offset);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* the temporary file may not exist */
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOSPC') throw new Error(`cannot write ${path}: the disk is full (the previous file, if any, is unchanged)`);
    if (e.code === 'EROFS') throw new Error(`cannot write ${path}: the file system is read-only`);
    if (e.code === 'EACCES' || e.code === 'EPERM') throw new Error(`cannot write ${path}: permission denied in ${dirname(path)}`);
    if (e.code === 'ENOENT') throw new Error(`cannot write ${path}: its folder ${dirname(path)} does not exist`);
    throw new Error(`cannot write ${path}: ${e.message}`);
  }
  try {
    const dirFd = openSync(dirname(path), 'r');
    fsyncSync(dirFd);
    closeSync(dirFd);
  } catch {
    /* directory fsync is best effort (not supported everywhere) */
  }
}
