// What kind of file a path holds, from its first bytes (extensions lie:
// pytorch-fid's .pth is a pickle or a zip, EDM's .pkl a pickle, ours safetensors).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** 'pickle-text': a protocol 0 or 1 pickle (no PROTO opcode), which no reader here takes. */
export type FileKind = 'zip' | 'pickle' | 'pickle-text' | 'gzip' | 'other';

/** The first opcodes a protocol 0/1 pickle of a container or an object starts with: MARK, EMPTY_LIST, EMPTY_DICT, GLOBAL. */
const TEXT_PICKLE_STARTS = new Set(['(', ']', '}', 'c'].map((c) => c.charCodeAt(0)));
const STOP = '.'.charCodeAt(0);

export function sniffFileKind(path: string): FileKind {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  const head = Buffer.alloc(2);
  const tail = Buffer.alloc(1);
  try {
    readSync(fd, head, 0, 2, 0);
    const size = fstatSync(fd).size;
    if (size > 0) readSync(fd, tail, 0, 1, size - 1);
  } finally {
    closeSync(fd);
  }
  if (head[0] === 0x50 && head[1] === 0x4b) return 'zip';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return 'pickle';
  if (TEXT_PICKLE_STARTS.has(head[0]!) && tail[0] === STOP) return 'pickle-text';
  return 'other';
}
