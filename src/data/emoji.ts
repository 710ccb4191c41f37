// The emoji set: Google Noto emoji artwork as 64×64 RGBA PNGs, shipped by the
// npm package emoji-datasource-google (iamcal/emoji-data) under img/google/64/.
// It is the project's 64×64 RGB built-in (the paper's small-data regime is
// ~5k images at 64×64). Transparent backgrounds are composited on white.
//
// Files are named by code points in lower-case hex joined by '-':
//   1f600.png               grinning face
//   1f44b-1f3fb.png         waving hand + light skin tone (a variant)
//   1f9d1-1f3fb-200d-1f91d-200d-1f9d1-1f3fc.png   people holding hands, two tones
// Skin-tone variants carry a modifier U+1F3FB..U+1F3FF after the first code
// point; they are near-duplicates of the base image, so they can be excluded.
// (1f3fb.png alone is the swatch emoji itself, not a variant.)
//
// Licence: the images are Apache-2.0 (Google Noto Emoji); LICENSE_NOTE must
// travel with any dataset made from them (edm-zip writes it as NOTICE).
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { ImageDataset } from './dataset.js';
import { DatasetError } from './errors.js';
import { readImages, type SkippedFile } from './images.js';
import type { ItemProgressOptions } from '../util/progress.js';
import { cacheRoot } from '../util/cache-dir.js';

/** The npm package the emoji images come from. */
export const EMOJI_PACKAGE = 'emoji-datasource-google';
/** Pinned so the dataset (and any FID reference made from it) never changes under us. */
export const EMOJI_PACKAGE_VERSION = '16.0.0';
/** The package's folder of 64×64 Google Noto images. */
export const EMOJI_IMAGE_SUBDIR = 'img/google/64';

/** The emoji images' licence and attribution, stored as NOTICE with any dataset made from them. */
export const LICENSE_NOTE = [
  `Emoji images: Noto Emoji by Google, from the npm package ${EMOJI_PACKAGE}@${EMOJI_PACKAGE_VERSION}`,
  '(https://github.com/iamcal/emoji-data, images from https://github.com/googlefonts/noto-emoji).',
  'The images are licensed under the Apache License, Version 2.0:',
  'http://www.apache.org/licenses/LICENSE-2.0',
  'Unless required by applicable law or agreed to in writing, they are distributed on an "AS IS" BASIS,',
  'WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.',
  'Modifications: transparent areas composited on a white background; images may be resized.',
  `The ${EMOJI_PACKAGE} package itself (metadata, tooling) is MIT-licensed, Copyright (c) Cal Henderson.`,
].join('\n');

/** Where the package is installed by default: emoji/ in the per-user cache (~/.cache/patch-diffusion). */
export function defaultEmojiCacheDir(): string {
  return path.join(cacheRoot(), 'emoji');
}

/** The folder of 64×64 PNGs inside an install prefix. */
export function emojiImageDir(cacheDir: string = defaultEmojiCacheDir()): string {
  return path.join(cacheDir, 'node_modules', EMOJI_PACKAGE, ...EMOJI_IMAGE_SUBDIR.split('/'));
}

const SKIN_TONES = new Set(['1f3fb', '1f3fc', '1f3fd', '1f3fe', '1f3ff']);

/** True for a skin-tone variant file name such as "1f44b-1f3fb.png". */
export function isSkinToneVariant(fileName: string): boolean {
  const stem = path.posix.basename(fileName.replace(/\\/g, '/')).replace(/\.png$/i, '').toLowerCase();
  return stem.split('-').slice(1).some((cp) => SKIN_TONES.has(cp));
}

function installedVersion(cacheDir: string): string | null {
  try {
    const pkg = JSON.parse(readFileSync(path.join(cacheDir, 'node_modules', EMOJI_PACKAGE, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : null;
  } catch {
    return null;
  }
}

/**
 * Make sure the pinned package is installed under `cacheDir` (npm install
 * --prefix; about 74 MB download) and return its image folder.
 */
export function ensureEmoji(options: { cacheDir?: string | undefined; install?: boolean | undefined } = {}): string {
  const cacheDir = options.cacheDir ?? defaultEmojiCacheDir();
  const imgDir = emojiImageDir(cacheDir);
  if (installedVersion(cacheDir) === EMOJI_PACKAGE_VERSION && existsSync(imgDir)) return imgDir;
  const spec = `${EMOJI_PACKAGE}@${EMOJI_PACKAGE_VERSION}`;
  const command = `npm install --prefix ${JSON.stringify(cacheDir)} --no-audit --no-fund ${spec}`;
  if (options.install !== true) {
    throw new DatasetError(`the emoji dataset is not installed in ${cacheDir}; fetch it with: npx patch-diffusion setup --data emoji (or ${command})`, { file: cacheDir });
  }
  mkdirSync(cacheDir, { recursive: true });
  process.stderr.write(`Installing ${spec} into ${cacheDir} (about 74 MB)...\n`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const res = spawnSync(npm, ['install', '--prefix', cacheDir, '--no-audit', '--no-fund', '--no-package-lock', spec], {
    stdio: ['ignore', 2, 2],
    shell: process.platform === 'win32',
  });
  if (res.error || res.status !== 0 || !existsSync(imgDir)) {
    const why = res.error ? res.error.message : `npm exited with status ${String(res.status)}`;
    throw new DatasetError(`installing ${spec} failed (${why}); check the network/npm registry access, or run: ${command}`, { file: cacheDir });
  }
  return imgDir;
}

/** How `loadEmoji` reads the emoji images: size, skin tones, and where the package is. */
export interface EmojiOptions extends ItemProgressOptions {
  /** Output side (default 64, the stored size: no resampling). */
  resolution?: number | undefined;
  /** Include skin-tone variants (default true: 3,786 images; false: ~1,900). */
  skinTones?: boolean | undefined;
  /** Install prefix for the npm package (default defaultEmojiCacheDir()). */
  cacheDir?: string | undefined;
  /** Read PNGs from this folder instead of the installed package (tests, custom copies). */
  imageDir?: string | undefined;
  /** Install the package when missing (default true). */
  install?: boolean | undefined;
  skipBad?: boolean | undefined;
  onSkip?: ((skipped: SkippedFile) => void) | undefined;
}

/** The emoji as an unlabelled RGB dataset, composited on white, with LICENSE_NOTE as its notice. */
export async function loadEmoji(options: EmojiOptions = {}): Promise<ImageDataset> {
  const dir = options.imageDir ?? ensureEmoji({ cacheDir: options.cacheDir, install: options.install });
  const keepTones = options.skinTones ?? true;
  const { dataset } = await readImages(dir, {
    resolution: options.resolution ?? 64,
    channels: 3,
    labels: false,
    // Only top-level PNGs: the image folder holds nothing else we want.
    filter: (rel) => !rel.includes('/') && rel.toLowerCase().endsWith('.png') && (keepTones || !isSkinToneVariant(rel)),
    name: 'emoji',
    notice: LICENSE_NOTE,
    skipBad: options.skipBad,
    onSkip: options.onSkip,
    onProgress: options.onProgress,
    progressBar: options.progressBar,
  });
  return dataset;
}
