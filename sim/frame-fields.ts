/**
 * The two top-level members of a frame the session-seq checker needs (`session_id` and `seq`),
 * read from the bytes as they leave their sender without building the whole value.
 *
 * Why: the checker sees every frame of the run; JSON.parse of each one (and the UTF-8 decode
 * before it) built a full object tree only to read two members, 3.6 % of the steady state's CPU
 * at 10,000 agents (docs/benchmarks.md). This walks the bytes once and allocates only the two
 * values, and gives what JSON.parse would give for them: members of nested values (a body's own
 * `seq`) are skipped by depth, a duplicate member name keeps its last value as JSON.parse does,
 * and whatever this walk does not read itself (an escape in a top-level name, a wanted value that
 * is not a plain string or a plain non-negative integer, bytes it cannot follow) goes to
 * JSON.parse, so a frame that is not JSON throws as before. It checks the top level's structure;
 * inside nested values it follows only strings and brackets, and the other members' numbers and
 * literals are not checked: the receivers' strict parser refuses malformed frames.
 */

const quote = 0x22;
const backslash = 0x5c;
const openBrace = 0x7b;
const closeBrace = 0x7d;
const openBracket = 0x5b;
const closeBracket = 0x5d;
const colon = 0x3a;
const comma = 0x2c;

export interface SeqFields {
  readonly sessionId: unknown;
  readonly seq: unknown;
}

const textDecoder = new TextDecoder();

function viaJsonParse(bytes: Uint8Array): SeqFields {
  const value = JSON.parse(textDecoder.decode(bytes)) as unknown;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { sessionId: undefined, seq: undefined };
  const frame = value as { session_id?: unknown; seq?: unknown };
  return { sessionId: frame.session_id, seq: frame.seq };
}

const isSpace = (byte: number) => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

/** Where a depth-1 member stands: before its name, before the colon, before the value, after it. */
const atName = 0;
const atColon = 1;
const atValue = 2;
const atNext = 3;
const wantNone = 0;
const wantSession = 1;
const wantSeq = 2;
/** Integers up to this many digits are exact doubles; longer ones go to JSON.parse. */
const plainDigitsMax = 15;

/** 1 for `session_id`, 2 for `seq`, 0 for any other name in bytes[start, end). */
function wantedName(bytes: Uint8Array, start: number, end: number): number {
  const length = end - start;
  if (length === 3) return bytes[start] === 0x73 && bytes[start + 1] === 0x65 && bytes[start + 2] === 0x71 ? wantSeq : wantNone;
  if (length !== 10) return wantNone;
  const name = 'session_id';
  for (let k = 0; k < 10; k++) if (bytes[start + k] !== name.charCodeAt(k)) return wantNone;
  return wantSession;
}

/** `session_id` and `seq` of a frame's top-level object, as JSON.parse would read them. */
export function frameSeqFields(bytes: Uint8Array): SeqFields {
  let sessionId: unknown;
  let seq: unknown;
  const n = bytes.length;
  let i = 0;
  while (i < n && isSpace(bytes[i]!)) i += 1;
  if (bytes[i] !== openBrace) return viaJsonParse(bytes);
  i += 1;
  let depth = 1;
  let member = atName;
  let first = true;
  let want = wantNone;
  while (i < n) {
    const byte = bytes[i]!;
    if (depth > 1) {
      // Inside a nested value: follow strings and brackets only.
      if (byte === quote) {
        i += 1;
        while (i < n && bytes[i] !== quote) i += bytes[i] === backslash ? 2 : 1;
      } else if (byte === openBrace || byte === openBracket) {
        depth += 1;
      } else if (byte === closeBrace || byte === closeBracket) {
        depth -= 1;
      }
      i += 1;
      continue;
    }
    if (isSpace(byte)) { i += 1; continue; }
    if (member === atName) {
      if (byte === closeBrace && first) { depth = 0; i += 1; break; }
      if (byte !== quote) return viaJsonParse(bytes);
      const nameStart = i + 1;
      let j = nameStart;
      while (j < n && bytes[j] !== quote) {
        if (bytes[j] === backslash) return viaJsonParse(bytes);
        j += 1;
      }
      if (j >= n) return viaJsonParse(bytes);
      want = wantedName(bytes, nameStart, j);
      first = false;
      member = atColon;
      i = j + 1;
    } else if (member === atColon) {
      if (byte !== colon) return viaJsonParse(bytes);
      member = atValue;
      i += 1;
    } else if (member === atValue) {
      member = atNext;
      if (byte === openBrace || byte === openBracket) {
        if (want !== wantNone) return viaJsonParse(bytes);
        depth += 1;
        i += 1;
      } else if (byte === quote) {
        let j = i + 1;
        while (j < n && bytes[j] !== quote) {
          const c = bytes[j]!;
          if (c === backslash) {
            if (want !== wantNone) return viaJsonParse(bytes);
            j += 1;
          } else if (want !== wantNone && (c < 0x20 || c > 0x7e)) {
            return viaJsonParse(bytes);
          }
          j += 1;
        }
        if (j >= n) return viaJsonParse(bytes);
        if (want !== wantNone) {
          const text = String.fromCharCode.apply(null, bytes.subarray(i + 1, j) as unknown as number[]);
          if (want === wantSession) sessionId = text; else seq = text;
        }
        i = j + 1;
      } else {
        // A number or a literal, up to the next delimiter.
        let j = i;
        while (j < n) {
          const c = bytes[j]!;
          if (c === comma || c === closeBrace || c === closeBracket || isSpace(c)) break;
          j += 1;
        }
        if (j === i) return viaJsonParse(bytes);
        if (want !== wantNone) {
          // A plain non-negative integer is read here; anything else (a sign, a fraction, a literal, a leading zero) by JSON.parse.
          const digits = j - i;
          if (digits > plainDigitsMax || (bytes[i] === 0x30 && digits > 1)) return viaJsonParse(bytes);
          let value = 0;
          for (let k = i; k < j; k++) {
            const c = bytes[k]!;
            if (c < 0x30 || c > 0x39) return viaJsonParse(bytes);
            value = value * 10 + (c - 0x30);
          }
          if (want === wantSession) sessionId = value; else seq = value;
        }
        i = j;
      }
    } else {
      if (byte === comma) { member = atName; i += 1; continue; }
      if (byte !== closeBrace) return viaJsonParse(bytes);
      depth = 0;
      i += 1;
      break;
    }
  }
  if (depth !== 0) return viaJsonParse(bytes);
  while (i < n && isSpace(bytes[i]!)) i += 1;
  return i === n ? { sessionId, seq } : viaJsonParse(bytes);
}
