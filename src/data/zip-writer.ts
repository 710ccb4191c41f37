// A streaming writer for "stored" (uncompressed) zips, the kind EDM datasets
// are. Why not yazl: it finds the next entry to write by scanning its entry
// list from the start each time, which is quadratic; 60,000 images took ~18 s
// of pure bookkeeping. Stored entries need no compression, so the format is
// small enough to write directly (PKWARE APPNOTE 6.3: local headers, data,
// central directory, end record; zip64 records when offsets or the entry
// count outgrow 32/16 bits, e.g. CelebA-sized sets over 4 GiB).
import { promises as fsp } from 'node:fs';
import { crc32 } from './png.js';

const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
// DOS date/time of 2000-01-01 00:00:00: fixed so equal inputs give equal bytes.
const DOS_DATE = ((2000 - 1980) << 9) | (1 << 5) | 1;
const DOS_TIME = 0;
const FLAG_UTF8 = 0x0800;

interface CentralEntry {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
}

/**
 * The byte layout of a stored zip, independent of where the bytes go: each
 * entry's local record, then the central directory and end records. `align`
 * pads the local header's extra field so every entry's data starts at a
 * multiple of it (torch.save aligns storages to 64 bytes this way).
 */
export class StoredZipLayout {
  offset = 0;
  private readonly entries: CentralEntry[] = [];
  private readonly names = new Set<string>();

  constructor(private readonly align = 1) {}

  /** The local header (and padding) to write before `data`; account for both. */
  entry(name: string, data: Uint8Array): Buffer[] {
    if (this.names.has(name)) throw new Error(`zip: duplicate entry ${name}`);
    if (data.length >= U32_MAX) throw new Error(`zip: entry ${name} is too large (${data.length} bytes)`);
    this.names.add(name);
    const nameBuf = Buffer.from(name, 'utf8');
    const crc = crc32(data);
    // Local header: sizes always fit 32 bits (checked above); only the offset
    // can outgrow them, and that lives in the central directory.
    let pad = (this.align - ((this.offset + 30 + nameBuf.length) % this.align)) % this.align;
    if (pad > 0 && pad < 4) pad += this.align; // an extra field needs a 4-byte header
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4); // version needed: 2.0
    h.writeUInt16LE(FLAG_UTF8, 6);
    h.writeUInt16LE(0, 8); // method: stored
    h.writeUInt16LE(DOS_TIME, 10);
    h.writeUInt16LE(DOS_DATE, 12);
    h.writeUInt32LE(crc, 14);
    h.writeUInt32LE(data.length, 18);
    h.writeUInt32LE(data.length, 22);
    h.writeUInt16LE(nameBuf.length, 26);
    h.writeUInt16LE(pad, 28);
    const extra = Buffer.alloc(pad);
    if (pad) {
      extra.writeUInt16LE(0x5044, 0); // private padding field (the id torch uses)
      extra.writeUInt16LE(pad - 4, 2);
    }
    this.entries.push({ name: nameBuf, crc, size: data.length, offset: this.offset });
    this.offset += 30 + nameBuf.length + pad + data.length;
    return [h, nameBuf, extra];
  }

  /** The central directory and end records (zip64 when offsets or the count outgrow 32/16 bits). */
  end(): Buffer {
    const out: Buffer[] = [];
    const cdStart = this.offset;
    let cdSize = 0;
    for (const e of this.entries) {
      const zip64Offset = e.offset >= U32_MAX;
      const extra = zip64Offset ? Buffer.alloc(12) : Buffer.alloc(0);
      if (zip64Offset) {
        extra.writeUInt16LE(0x0001, 0); // zip64 extended information
        extra.writeUInt16LE(8, 2);
        extra.writeBigUInt64LE(BigInt(e.offset), 4);
      }
      const c = Buffer.alloc(46);
      c.writeUInt32LE(0x02014b50, 0);
      c.writeUInt16LE((3 << 8) | 45, 4); // made by: Unix, spec 4.5
      c.writeUInt16LE(zip64Offset ? 45 : 20, 6);
      c.writeUInt16LE(FLAG_UTF8, 8);
      c.writeUInt16LE(0, 10);
      c.writeUInt16LE(DOS_TIME, 12);
      c.writeUInt16LE(DOS_DATE, 14);
      c.writeUInt32LE(e.crc, 16);
      c.writeUInt32LE(e.size, 20);
      c.writeUInt32LE(e.size, 24);
      c.writeUInt16LE(e.name.length, 28);
      c.writeUInt16LE(extra.length, 30);
      c.writeUInt16LE(0, 32); // comment length
      c.writeUInt16LE(0, 34); // disk number
      c.writeUInt16LE(0, 36); // internal attributes
      c.writeUInt32LE((0o100644 << 16) >>> 0, 38); // regular file, rw-r--r--
      c.writeUInt32LE(zip64Offset ? U32_MAX : e.offset, 42);
      out.push(c, e.name, extra);
      cdSize += c.length + e.name.length + extra.length;
    }
    const count = this.entries.length;
    const needZip64 = count >= U16_MAX || cdStart >= U32_MAX || cdSize >= U32_MAX;
    if (needZip64) {
      const z64Start = cdStart + cdSize;
      const r = Buffer.alloc(56);
      r.writeUInt32LE(0x06064b50, 0);
      r.writeBigUInt64LE(44n, 4); // size of the rest of this record
      r.writeUInt16LE((3 << 8) | 45, 12);
      r.writeUInt16LE(45, 14);
      r.writeUInt32LE(0, 16);
      r.writeUInt32LE(0, 20);
      r.writeBigUInt64LE(BigInt(count), 24);
      r.writeBigUInt64LE(BigInt(count), 32);
      r.writeBigUInt64LE(BigInt(cdSize), 40);
      r.writeBigUInt64LE(BigInt(cdStart), 48);
      const loc = Buffer.alloc(20);
      loc.writeUInt32LE(0x07064b50, 0);
      loc.writeUInt32LE(0, 4);
      loc.writeBigUInt64LE(BigInt(z64Start), 8);
      loc.writeUInt32LE(1, 16); // total disks
      out.push(r, loc);
    }
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(0, 4);
    end.writeUInt16LE(0, 6);
    end.writeUInt16LE(Math.min(count, U16_MAX), 8);
    end.writeUInt16LE(Math.min(count, U16_MAX), 10);
    end.writeUInt32LE(Math.min(cdSize, U32_MAX), 12);
    end.writeUInt32LE(Math.min(cdStart, U32_MAX), 16);
    end.writeUInt16LE(0, 20);
    out.push(end);
    const all = Buffer.concat(out);
    this.offset += all.length;
    return all;
  }
}

/** A whole stored zip in memory, as chunks (for small files written atomically: .npz, .pt). */
export function storedZipChunks(files: Iterable<[string, Uint8Array]>, options: { align?: number } = {}): Uint8Array[] {
  const layout = new StoredZipLayout(options.align ?? 1);
  const chunks: Uint8Array[] = [];
  for (const [name, data] of files) chunks.push(...layout.entry(name, data), data);
  chunks.push(layout.end());
  return chunks;
}

/**
 * Writes an uncompressed zip entry by entry, streaming (zip64 when the offsets or entry count need it): EDM's
 * dataset zips.
 */
export class StoredZipWriter {
  private readonly layout = new StoredZipLayout();
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private closed = false;

  private constructor(private readonly fh: fsp.FileHandle) {}

  /** Create (truncate) `file` for writing. */
  static async create(file: string): Promise<StoredZipWriter> {
    return new StoredZipWriter(await fsp.open(file, 'w'));
  }

  private async push(buf: Buffer): Promise<void> {
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    // Batch small writes: one syscall per ~4 MiB instead of two per entry.
    if (this.pendingBytes >= 4 << 20) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    await this.fh.write(data);
  }

  /** Append one file (name with '/' separators). Entries are kept in the order added. */
  async add(name: string, data: Uint8Array): Promise<void> {
    if (this.closed) throw new Error('StoredZipWriter: add after finish');
    await this.push(Buffer.concat(this.layout.entry(name, data)));
    await this.push(Buffer.from(data.buffer, data.byteOffset, data.length));
  }

  /** Write the central directory and close. Returns the zip's size in bytes. */
  async finish(): Promise<number> {
    if (this.closed) throw new Error('StoredZipWriter: finish twice');
    this.closed = true;
    await this.push(this.layout.end());
    await this.flush();
    await this.fh.sync();
    await this.fh.close();
    return this.layout.offset;
  }

  /** Close without finishing (the caller deletes the file). */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.fh.close().catch(() => {});
    }
  }
}
