// What kind of file a path holds, from its first bytes (extensions lie:
// pytorch-fid's .pth is a pickle or a zip, EDM's .pkl a pickle, ours safetensors).
import { closeSync, openSync, readSync } from 'node:fs';

export type FileKind = 'zip' | 'pickle' | 'gzip' | 'other';

export function sniffFileKind(path: string): FileKind {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  const head = Buffer.alloc(2);
  try {
    readSync(fd, head, 0, 2, 0);
  } finally {
    closeSync(fd);
  }
  if (head[0] === 0x50 && head[1] === 0x4b) return 'zip';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return 'pickle';
  return 'other';
}
