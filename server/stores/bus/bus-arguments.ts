import { SdcError } from '../../../core/errors/index.js';

/** Argument checks shared by both bus adapters, so they refuse the same inputs the same way. */
export const busLimits = {
  nameLengthMax: 200,
  fieldsMax: 64,
  fieldBytesMax: 64 * 1024,
  countMax: 10_000,
  blockMsMax: 60_000,
  maxLenMax: 10_000_000,
  reasonLengthMax: 1024,
  /** Entries in one appendBatch: one pipeline's replies stay a few MB at most (64 fields x 64 KiB each is the worst entry). */
  batchEntriesMax: 1_000,
  /**
   * trimmedUnread counts the entries after a group's position up to this many (on Redis, an XRANGE
   * inside a script: the server holds them for the count); beyond it the loss is a lower bound.
   */
  trimCountEntriesMax: 256,
} as const;

export function checkName(kind: string, value: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > busLimits.nameLengthMax) {
    throw new SdcError('STORE_INVALID_ARGUMENT', `${kind} name must be 1..${busLimits.nameLengthMax} characters`);
  }
}

export function checkCount(kind: string, value: number, max: number = busLimits.countMax): void {
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new SdcError('STORE_INVALID_ARGUMENT', `${kind} must be an integer in 1..${max}`);
  }
}

export function checkNonNegative(kind: string, value: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new SdcError('STORE_INVALID_ARGUMENT', `${kind} must be an integer in 0..${max}`);
  }
}

/** A string of at most this many UTF-16 units is within fieldBytesMax without counting its bytes: UTF-8 takes at most 3 bytes per unit. */
const fieldUnitsSurelyWithin = Math.floor(busLimits.fieldBytesMax / 3);

export function checkFields(fields: Record<string, string>): void {
  const names = Object.keys(fields);
  if (names.length === 0 || names.length > busLimits.fieldsMax) {
    throw new SdcError('STORE_INVALID_ARGUMENT', `an entry needs 1..${busLimits.fieldsMax} fields`);
  }
  for (const name of names) {
    const value = fields[name];
    if (typeof value !== 'string') throw new SdcError('STORE_INVALID_ARGUMENT', `field ${name} is not a string`);
    if (name.length === 0) throw new SdcError('STORE_INVALID_ARGUMENT', 'field names must not be empty');
    // Every appended entry passes here (each telemetry sample): the byte count only when the length leaves it in doubt.
    if (value.length > fieldUnitsSurelyWithin && Buffer.byteLength(value) > busLimits.fieldBytesMax) {
      throw new SdcError('STORE_LIMIT', `field ${name} exceeds ${busLimits.fieldBytesMax} bytes`);
    }
  }
}

const entryIdPattern = /^(\d{1,16})-(\d{1,16})$/;

export function parseEntryId(id: string): { ms: number; seq: number } {
  const match = entryIdPattern.exec(id);
  if (match === null) throw new SdcError('STORE_INVALID_ARGUMENT', `not a stream entry id: ${JSON.stringify(id)}`);
  return { ms: Number(match[1]), seq: Number(match[2]) };
}

/** Ids for range and remove: 1..countMax well-formed entry ids. */
export function checkIds(ids: readonly string[]): void {
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > busLimits.countMax) {
    throw new SdcError('STORE_INVALID_ARGUMENT', `give 1..${busLimits.countMax} entry ids`);
  }
  for (const id of ids) parseEntryId(id);
}

/** Checks a whole batch before anything is appended, so a refusal appends nothing. */
export function checkBatch(stream: string, entries: ReadonlyArray<Record<string, string>>, maxLen: number | undefined): void {
  checkName('stream', stream);
  if (!Array.isArray(entries) || entries.length > busLimits.batchEntriesMax) {
    throw new SdcError('STORE_LIMIT', `a batch holds at most ${busLimits.batchEntriesMax} entries`);
  }
  for (const fields of entries) checkFields(fields);
  if (maxLen !== undefined) checkCount('maxLen', maxLen, busLimits.maxLenMax);
}
