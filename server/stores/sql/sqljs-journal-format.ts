import { SdcError } from '../../../core/errors/index.js';

/**
 * The byte format of the embedded store's append-only journal (sqljs-journal.ts writes and reads
 * the file). A journal is a header followed by records; each record is one committed write (an
 * autocommit statement or a whole transaction): the statements with their bound values, so
 * replaying them on the snapshot gives the same database.
 *
 *   header  = magic "SDCJRNL1" (8 bytes) | format version u32 | reserved u32 (0)
 *             | sequence of the first record u64 (the one after the snapshot it follows)
 *   record  = payload length u32 | CRC-32C u32 of the rest | sequence u64
 *             | position in its append u32 (0: the first record of one group commit's write) | payload
 *   payload = statement count u32, then per statement:
 *             SQL length u32 | SQL UTF-8 | value count u32 | values (tag u8 + data each)
 *
 * All integers are little-endian. The sequence number counts records from the database's first
 * commit, so a snapshot can say which records it already holds. The position tells which records
 * went to disk in one write (sequence - position = the write's first record): a crash can leave
 * such a write's records damaged in any order, while a write after it proves it was synced.
 */
export const journalMagic = Buffer.from('SDCJRNL1', 'ascii');
export const journalFormatVersion = 2;
export const journalHeaderBytes = 24;
export const recordHeaderBytes = 20;

/**
 * Largest record (one commit's statements and values): 16 MiB, MariaDB's default
 * max_allowed_packet, so a write the real adapter takes is not refused here. It also bounds what
 * open() must hold in memory to check one record.
 */
export const journalRecordBytesMax = 16 * 1024 * 1024;

/** A value as it is bound (after normaliseParams): booleans are already 1 / 0. */
export type JournalValue = string | number | bigint | null | Uint8Array;

export interface JournalStatement {
  readonly sql: string;
  readonly params: readonly JournalValue[];
}

export interface JournalRecord {
  readonly sequence: number;
  /** Records before it in the same append (group commit). */
  readonly positionInAppend: number;
  readonly statements: readonly JournalStatement[];
}

const tagNull = 0;
const tagFloat64 = 1;
const tagInt64 = 2;
const tagUtf8 = 3;
const tagBlob = 4;
/** A string with a lone surrogate: UTF-8 cannot carry it exactly, so its UTF-16 code units are kept. */
const tagUtf16 = 5;

export function writeJournalHeader(header: Buffer, baseSequence: number): void {
  journalMagic.copy(header, 0);
  header.writeUInt32LE(journalFormatVersion, 8);
  header.writeUInt32LE(0, 12);
  writeSequence(header, 16, baseSequence);
}

/** The bytes one statement adds to a record's payload (to refuse an oversized commit before it runs). */
export function statementBytes(statement: JournalStatement): number {
  let bytes = 8 + Buffer.byteLength(statement.sql, 'utf8');
  for (const value of statement.params) bytes += 1 + valueBytes(value);
  return bytes;
}

function valueBytes(value: JournalValue): number {
  if (value === null) return 0;
  if (typeof value === 'number' || typeof value === 'bigint') return 8;
  if (typeof value === 'string') return 4 + (isWellFormed(value) ? Buffer.byteLength(value, 'utf8') : value.length * 2);
  return 4 + value.byteLength;
}

/** One record, ready to append. The caller has checked its size against journalRecordBytesMax. */
export function encodeRecord(record: JournalRecord): Buffer {
  let payloadBytes = 4;
  for (const statement of record.statements) payloadBytes += statementBytes(statement);
  const buffer = Buffer.allocUnsafe(recordHeaderBytes + payloadBytes);
  buffer.writeUInt32LE(payloadBytes, 0);
  writeSequence(buffer, 8, record.sequence);
  buffer.writeUInt32LE(record.positionInAppend, 16);
  let offset = buffer.writeUInt32LE(record.statements.length, recordHeaderBytes);
  for (const statement of record.statements) offset = writeStatement(buffer, offset, statement);
  buffer.writeUInt32LE(crc32c(buffer, 8, buffer.length), 4);
  return buffer;
}

function writeStatement(buffer: Buffer, start: number, statement: JournalStatement): number {
  const sqlBytes = buffer.write(statement.sql, start + 4, 'utf8');
  buffer.writeUInt32LE(sqlBytes, start);
  let offset = buffer.writeUInt32LE(statement.params.length, start + 4 + sqlBytes);
  for (const value of statement.params) offset = writeValue(buffer, offset, value);
  return offset;
}

function writeValue(buffer: Buffer, offset: number, value: JournalValue): number {
  if (value === null) return buffer.writeUInt8(tagNull, offset);
  if (typeof value === 'number') return buffer.writeDoubleLE(value, buffer.writeUInt8(tagFloat64, offset));
  if (typeof value === 'bigint') return buffer.writeBigInt64LE(value, buffer.writeUInt8(tagInt64, offset));
  if (typeof value === 'string') {
    const wellFormed = isWellFormed(value);
    const at = buffer.writeUInt8(wellFormed ? tagUtf8 : tagUtf16, offset);
    const bytes = buffer.write(value, at + 4, wellFormed ? 'utf8' : 'utf16le');
    buffer.writeUInt32LE(bytes, at);
    return at + 4 + bytes;
  }
  const at = buffer.writeUInt8(tagBlob, offset);
  buffer.writeUInt32LE(value.byteLength, at);
  buffer.set(value, at + 4);
  return at + 4 + value.byteLength;
}

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** String.prototype.isWellFormed, which the ES2023 library types do not declare. */
function isWellFormed(value: string): boolean {
  return !loneSurrogate.test(value);
}

/** Sequence numbers stay below 2^53 (a JavaScript number); stored as u64. */
function writeSequence(buffer: Buffer, offset: number, sequence: number): void {
  buffer.writeUInt32LE(sequence % 0x1_0000_0000, offset);
  buffer.writeUInt32LE(Math.floor(sequence / 0x1_0000_0000), offset + 4);
}

export function readSequence(buffer: Buffer, offset: number): number {
  return buffer.readUInt32LE(offset) + buffer.readUInt32LE(offset + 4) * 0x1_0000_0000;
}

/** What is at `offset`: a whole record with a good checksum, or why not. */
export type RecordProbe =
  | { readonly kind: 'record'; readonly sequence: number; readonly appendStart: number; readonly end: number }
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'bad-checksum'; readonly end: number }
  | { readonly kind: 'bad-length' };

export function probeRecord(file: Buffer, offset: number): RecordProbe {
  if (file.length - offset < recordHeaderBytes) return { kind: 'incomplete' };
  const payloadBytes = file.readUInt32LE(offset);
  if (payloadBytes < 4 || payloadBytes > journalRecordBytesMax) return { kind: 'bad-length' };
  const end = offset + recordHeaderBytes + payloadBytes;
  if (end > file.length) return { kind: 'incomplete' };
  if (crc32c(file, offset + 8, end) !== file.readUInt32LE(offset + 4)) return { kind: 'bad-checksum', end };
  const sequence = readSequence(file, offset + 8);
  return { kind: 'record', sequence, appendStart: sequence - file.readUInt32LE(offset + 16), end };
}

/** Decodes the statements of a record that probeRecord accepted; a malformed payload is STORE_CORRUPT. */
export function decodeStatements(file: Buffer, start: number, end: number): JournalStatement[] {
  const reader = new PayloadReader(file, start + recordHeaderBytes, end);
  const count = reader.u32();
  const statements: JournalStatement[] = [];
  for (let i = 0; i < count; i++) {
    const sql = reader.text('utf8');
    const valueCount = reader.u32();
    const params: JournalValue[] = [];
    for (let v = 0; v < valueCount; v++) params.push(reader.value());
    statements.push({ sql, params });
  }
  if (!reader.atEnd()) throw corruptPayload(start);
  return statements;
}

function corruptPayload(offset: number): SdcError {
  return new SdcError('STORE_CORRUPT', `journal record at byte ${offset} has a good checksum but a malformed payload`);
}

class PayloadReader {
  constructor(private readonly file: Buffer, private offset: number, private readonly end: number) {}

  atEnd(): boolean {
    return this.offset === this.end;
  }

  u32(): number {
    this.need(4);
    const value = this.file.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  text(encoding: 'utf8' | 'utf16le'): string {
    const bytes = this.u32();
    this.need(bytes);
    const value = this.file.toString(encoding, this.offset, this.offset + bytes);
    this.offset += bytes;
    return value;
  }

  value(): JournalValue {
    this.need(1);
    const tag = this.file.readUInt8(this.offset);
    this.offset += 1;
    switch (tag) {
      case tagNull: return null;
      case tagFloat64: return this.fixed(8, (at) => this.file.readDoubleLE(at));
      case tagInt64: return this.fixed(8, (at) => this.file.readBigInt64LE(at));
      case tagUtf8: return this.text('utf8');
      case tagUtf16: return this.text('utf16le');
      case tagBlob: {
        const bytes = this.u32();
        this.need(bytes);
        // A copy: the file buffer is released after open.
        const blob = new Uint8Array(this.file.subarray(this.offset, this.offset + bytes));
        this.offset += bytes;
        return blob;
      }
      default: throw corruptPayload(this.offset);
    }
  }

  private fixed<T>(bytes: number, read: (at: number) => T): T {
    this.need(bytes);
    const value = read(this.offset);
    this.offset += bytes;
    return value;
  }

  private need(bytes: number): void {
    if (this.offset + bytes > this.end) throw corruptPayload(this.offset);
  }
}

/** CRC-32C (Castagnoli), table-driven: zlib.crc32 needs Node 20.15 and the package allows 20.10. */
const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let bit = 0; bit < 8; bit++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ crcTable[(crc ^ bytes[i]!) & 0xff]!;
  return (crc ^ 0xffffffff) >>> 0;
}
