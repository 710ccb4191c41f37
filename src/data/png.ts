// A minimal PNG codec for the one kind of PNG datasets are made of: 8-bit grey
// or RGB, no alpha, not interlaced. Why not always sharp: a per-image call
// into libvips costs ~0.5 ms, so a 60,000-image EDM zip took ~40 s to write
// and ~50 s to read on 2 cores; zlib plus a row loop is >10× faster. Anything
// outside that simple profile (alpha, palette, 16-bit, ICC profiles,
// interlacing, or any damage at all) makes decodeSimplePng return null and the
// caller falls back to sharp, which also produces the error messages.
import * as zlib from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 as PNG and zip use it, in JS (zlib.crc32 only exists from Node 20.15). */
export function crc32Js(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const nativeCrc32 = (zlib as unknown as { crc32?: (data: Uint8Array) => number }).crc32;

/** CRC-32: native zlib.crc32 where Node has it (~10× faster), else crc32Js. */
export const crc32: (data: Uint8Array) => number = typeof nativeCrc32 === 'function' ? (d) => nativeCrc32(d) : (d) => crc32Js(d);

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/**
 * Encode HWC uint8 pixels as an 8-bit grey (1) or RGB (3) PNG with filter 0
 * and zlib level 0 (stored), like EDM's PIL save(compress_level=0): the
 * output is deterministic and decoding it is a copy.
 */
export function encodePngRaw(hwc: Uint8Array, width: number, height: number, channels: 1 | 3): Buffer {
  const stride = width * channels;
  if (hwc.length !== stride * height) throw new RangeError(`encodePngRaw: ${hwc.length} bytes for ${width}×${height}×${channels}`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 1 ? 0 : 2; // colour type: grey or truecolour
  // compression, filter, interlace: all 0
  const filtered = Buffer.alloc(height * (stride + 1));
  for (let y = 0; y < height; y++) filtered.set(hwc.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const idat = zlib.deflateSync(filtered, { level: 0 });
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))]);
}

/** A decoded PNG: its size, channels and HWC pixels. */
export interface SimplePng {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3;
  /** HWC pixels. */
  readonly data: Uint8Array;
}

// Chunks that do not change how pixels should be read (text, density, time,
// and the plain sRGB marker). Anything else (iCCP, gAMA, tRNS, sBIT, ...)
// could change colours or add transparency, so we defer to sharp.
const HARMLESS = new Set(['IHDR', 'IDAT', 'IEND', 'tEXt', 'zTXt', 'iTXt', 'pHYs', 'tIME', 'sRGB']);

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Decode an 8-bit grey/RGB non-interlaced PNG, or return null for anything else (including damage). */
export function decodeSimplePng(buf: Uint8Array): SimplePng | null {
  if (buf.length < 8 + 25 || !SIGNATURE.equals(Buffer.from(buf.buffer, buf.byteOffset, 8))) return null;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels: 1 | 3 = 1;
  const idat: Uint8Array[] = [];
  let sawEnd = false;
  while (pos + 12 <= buf.length) {
    const len = view.getUint32(pos, false);
    if (pos + 12 + len > buf.length) return null;
    const type = String.fromCharCode(buf[pos + 4]!, buf[pos + 5]!, buf[pos + 6]!, buf[pos + 7]!);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (crc32(buf.subarray(pos + 4, pos + 8 + len)) !== view.getUint32(pos + 8 + len, false)) return null;
    if (!HARMLESS.has(type)) return null;
    if (type === 'IHDR') {
      if (pos !== 8 || len !== 13) return null;
      width = view.getUint32(pos + 8, false);
      height = view.getUint32(pos + 12, false);
      const [depth, colour, comp, filter, interlace] = [data[8], data[9], data[10], data[11], data[12]];
      if (depth !== 8 || (colour !== 0 && colour !== 2) || comp !== 0 || filter !== 0 || interlace !== 0) return null;
      channels = colour === 0 ? 1 : 3;
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      sawEnd = true;
      break;
    }
    pos += 12 + len;
  }
  if (!sawEnd || width === 0 || height === 0 || idat.length === 0 || width * height > 1 << 26) return null;
  let raw: Buffer;
  try {
    raw = zlib.inflateSync(Buffer.concat(idat));
  } catch {
    return null;
  }
  const stride = width * channels;
  if (raw.length !== height * (stride + 1)) return null;
  const out = new Uint8Array(height * stride);
  const bpp = channels;
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride;
    switch (f) {
      case 0:
        out.set(raw.subarray(src, src + stride), row);
        break;
      case 1:
        for (let x = 0; x < stride; x++) out[row + x] = (raw[src + x]! + (x >= bpp ? out[row + x - bpp]! : 0)) & 255;
        break;
      case 2:
        for (let x = 0; x < stride; x++) out[row + x] = (raw[src + x]! + (y > 0 ? out[prev + x]! : 0)) & 255;
        break;
      case 3:
        for (let x = 0; x < stride; x++) {
          const a = x >= bpp ? out[row + x - bpp]! : 0;
          const b = y > 0 ? out[prev + x]! : 0;
          out[row + x] = (raw[src + x]! + ((a + b) >>> 1)) & 255;
        }
        break;
      case 4:
        for (let x = 0; x < stride; x++) {
          const a = x >= bpp ? out[row + x - bpp]! : 0;
          const b = y > 0 ? out[prev + x]! : 0;
          const c = x >= bpp && y > 0 ? out[prev + x - bpp]! : 0;
          out[row + x] = (raw[src + x]! + paeth(a, b, c)) & 255;
        }
        break;
      default:
        return null;
    }
  }
  return { width, height, channels, data: out };
}
