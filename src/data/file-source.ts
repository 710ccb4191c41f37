// A folder or a zip seen the same way: a sorted list of relative paths ('/'
// separated, as in EDM's dataset.json) and a way to read each one. images.ts
// decodes; this module only finds and reads bytes, and turns filesystem/zip
// failures into errors that name the path.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { DatasetError, describeError } from './errors.js';
import { ZipReader, type ZipEntryInfo } from './zip-reader.js';

/** A folder or a zip seen as a sorted list of files that can be read. */
export interface FileSource {
  readonly kind: 'folder' | 'zip';
  /** The path given by the user. */
  readonly root: string;
  /** Every regular file, relative to the root, '/'-separated, sorted by code unit. */
  readonly files: readonly string[];
  read(relPath: string): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * Hidden files and macOS resource forks are never data: "._img.png" files in
 * zips made on a Mac would otherwise look like corrupt PNGs.
 */
export function isIgnoredPath(relPath: string): boolean {
  return relPath.split('/').some((part) => part.startsWith('.') || part === '__MACOSX');
}

/**
 * Opens a folder or a .zip as a FileSource (hidden files and __MACOSX left out); a DatasetError when it is
 * neither.
 */
export async function openFileSource(source: string): Promise<FileSource> {
  let st;
  try {
    st = await fsp.stat(source);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DatasetError(`dataset source not found: ${source} (expected a folder of images, a .zip, or a built-in name)`, { file: source });
    throw new DatasetError(`cannot read dataset source ${source}: ${describeError(err)}`, { file: source, cause: err });
  }
  if (st.isDirectory()) return openFolder(source);
  if (st.isFile()) return openZip(source);
  throw new DatasetError(`dataset source ${source} is neither a folder nor a file`, { file: source });
}

async function openFolder(root: string): Promise<FileSource> {
  const files: string[] = [];
  const seenDirs = new Set<string>();
  async function walk(dir: string, rel: string): Promise<void> {
    // Symlinked folders are followed once (realpath) so a link loop cannot hang us.
    const real = await fsp.realpath(dir);
    if (seenDirs.has(real)) return;
    seenDirs.add(real);
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw new DatasetError(`cannot list folder ${dir}: ${describeError(err)}`, { file: dir, cause: err });
    }
    for (const e of entries) {
      const childRel = rel ? `${rel}/${e.name}` : e.name;
      if (isIgnoredPath(e.name)) continue;
      const full = path.join(dir, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        const t = await fsp.stat(full).catch(() => null);
        if (!t) continue; // dangling link
        isDir = t.isDirectory();
        isFile = t.isFile();
      }
      if (isDir) await walk(full, childRel);
      else if (isFile) files.push(childRel);
    }
  }
  await walk(root, '');
  files.sort();
  return {
    kind: 'folder',
    root,
    files,
    async read(relPath) {
      const full = path.join(root, ...relPath.split('/'));
      try {
        return await fsp.readFile(full);
      } catch (err) {
        throw new DatasetError(`cannot read ${full}: ${describeError(err)}`, { file: full, cause: err });
      }
    },
    async close() {},
  };
}

async function openZip(zipPath: string): Promise<FileSource> {
  const zip = ZipReader.open(zipPath);
  const entries = new Map<string, ZipEntryInfo>();
  for (const entry of zip.entries) {
    const name = entry.name.replace(/\\/g, '/').replace(/^\.\//, '');
    if (name.endsWith('/') || isIgnoredPath(name)) continue;
    entries.set(name, entry);
  }
  const files = [...entries.keys()].sort();
  return {
    kind: 'zip',
    root: zipPath,
    files,
    async read(relPath) {
      const entry = entries.get(relPath);
      const where = `${zipPath}:${relPath}`;
      if (!entry) throw new DatasetError(`${where} does not exist in the zip`, { file: where });
      return zip.read(entry);
    },
    async close() {
      zip.close();
    },
  };
}
