/**
 * Bodies that hold other bytes packed inside them, which the gateway does
 * not unpack: a download of an archive or a compressed export (a ZIP, an
 * .xlsx, which is one, a .json.bz2) carries the same personal data as the
 * JSON it was made from, and a client unpacks it without a Content-Encoding
 * saying so. A gzip body is decoded once and masked (body.ts decodeContent);
 * gzip still there after that (a .json.gz served gzipped, or gzip under br)
 * is packed like the rest.
 */
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';

const inflate = promisify(zlib.inflate);

/** Magic numbers at the start of a body, by format. */
const MAGIC: ReadonlyArray<readonly [string, Buffer]> = [
  ['gzip-compressed', Buffer.from([0x1f, 0x8b, 0x08])],
  ['a ZIP archive', Buffer.from('PK\x03\x04', 'latin1')],
  ['an empty ZIP archive', Buffer.from('PK\x05\x06', 'latin1')],
  ['a spanned ZIP archive', Buffer.from('PK\x07\x08', 'latin1')],
  ['xz-compressed', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['zstd-compressed', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ['a 7z archive', Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])],
  ['a RAR archive', Buffer.from('Rar!\x1a\x07', 'latin1')],
];

/** "BZh", a block size, and the first block's magic (the digits of pi): text can start "BZh9" too. */
const BZIP2 = /^BZh[1-9]1AY&SY/;

/** What the body is packed as ("a ZIP archive", "zlib-compressed", …), or null when it is not. */
export async function packedFormat(bytes: Buffer): Promise<string | null> {
  for (const [format, magic] of MAGIC) if (bytes.subarray(0, magic.length).equals(magic)) return format;
  if (BZIP2.test(bytes.toString('latin1', 0, 10))) return 'bzip2-compressed';
  // Two header bytes are all a zlib stream has, and text can start with them ("x^2"): it is zlib if it inflates,
  // even cut short (a client's decompressor returns what it can) or too big to inflate whole.
  if (isZlibHeader(bytes) && (await inflate(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: 1024 * 1024 }).then(() => true, tooBig))) {
    return 'zlib-compressed';
  }
  return null;
}

function tooBig(err: NodeJS.ErrnoException): boolean {
  return err instanceof RangeError || err.code === 'ERR_BUFFER_TOO_LARGE';
}

/** A zlib stream's two header bytes (RFC 1950): deflate, a window size, and a check making them a multiple of 31. */
export function isZlibHeader(bytes: Buffer): boolean {
  return bytes.length >= 2 && (bytes[0]! & 0x0f) === 8 && (bytes[0]! >> 4) <= 7 && ((bytes[0]! << 8) | bytes[1]!) % 31 === 0;
}
