/**
 * The kernel's reading of a signed command: a deliberately small, strict scanner over the bytes
 * the control plane signed ("sdc-command-v1\n" + RFC 8785 canonical JSON). It runs only after the
 * command signature verified, so its input is control-plane output; strictness (no whitespace, no
 * duplicate fields, bounded depth and sizes) keeps it small enough to mirror byte for byte in C
 * (kernel/native/src/sdc_command.c), which gives the same answer for every input.
 * It extracts only what the kernel checks: device_id, device_seq, expires_at, opcode and the flat args.
 */

export const commandSigningPrefixBytes = new TextEncoder().encode('sdc-command-v1\n');

/** Limits of the scanner; the C side has the same numbers. */
export const commandParseLimits = Object.freeze({
  /** Nesting of skipped values (args is depth 2); canonical commands use 2. */
  depthMax: 8,
  deviceIdBytesMax: 64,
  opcodeBytesMax: 32,
  /** The protocol's args schema allows 32 properties of 64-character names. */
  argsMax: 32,
  argNameBytesMax: 64,
  /** 2^53 - 1 has 16 digits: seqs and integer args are JSON-safe integers. */
  integerDigitsMax: 16,
});

/** An args value: a raw string (escapes left as they are) or a non-negative integer. */
export type CommandArg = { kind: 'string'; raw: Uint8Array } | { kind: 'integer'; value: bigint };

export interface ParsedCommand {
  deviceId: string;
  deviceSeq: bigint;
  /** Unix ms after which the command is void (the kernel allows commandExpiryGraceMs of clock difference). */
  expiresAt: bigint;
  opcode: string;
  args: Map<string, CommandArg>;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const safeIntegerMax = (1n << 53n) - 1n;

class Scanner {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}
  peek(): number { return this.pos < this.bytes.length ? this.bytes[this.pos]! : -1; }
  take(byte: number): boolean {
    if (this.peek() !== byte) return false;
    this.pos++;
    return true;
  }
  /** A string's raw content (between the quotes); undefined on a control byte or no end quote. */
  string(): Uint8Array | undefined {
    if (!this.take(QUOTE)) return undefined;
    const start = this.pos;
    while (this.pos < this.bytes.length) {
      const b = this.bytes[this.pos]!;
      if (b === QUOTE) return this.bytes.subarray(start, this.pos++);
      if (b < 0x20) return undefined;
      this.pos += b === BACKSLASH ? 2 : 1;
    }
    return undefined;
  }
  digits(): number {
    const start = this.pos;
    while (this.peek() >= 0x30 && this.peek() <= 0x39) this.pos++;
    return this.pos - start;
  }
  /** -?digits(.digits)?([eE][+-]?digits)? */
  number(): boolean {
    this.take(0x2d);
    if (this.digits() === 0) return false;
    if (this.take(0x2e) && this.digits() === 0) return false;
    if (this.take(0x65) || this.take(0x45)) {
      if (!this.take(0x2b)) this.take(0x2d);
      if (this.digits() === 0) return false;
    }
    return true;
  }
  literal(word: string): boolean {
    for (let i = 0; i < word.length; i++) if (this.bytes[this.pos + i] !== word.charCodeAt(i)) return false;
    this.pos += word.length;
    return true;
  }
  /** Skips any JSON value up to depthMax levels of nesting. */
  skipValue(depth: number): boolean {
    const b = this.peek();
    if (b === QUOTE) return this.string() !== undefined;
    if (b === 0x7b || b === 0x5b) {
      if (depth >= commandParseLimits.depthMax) return false;
      const close = b === 0x7b ? 0x7d : 0x5d;
      this.pos++;
      if (this.take(close)) return true;
      do {
        if (b === 0x7b && !(this.string() !== undefined && this.take(0x3a))) return false;
        if (!this.skipValue(depth + 1)) return false;
      } while (this.take(0x2c));
      return this.take(close);
    }
    if (b === 0x74) return this.literal('true');
    if (b === 0x66) return this.literal('false');
    if (b === 0x6e) return this.literal('null');
    return this.number();
  }
  /** A non-negative integer of 1..integerDigitsMax digits, at most 2^53 - 1. */
  integer(): bigint | undefined {
    const start = this.pos;
    const n = this.digits();
    if (n === 0 || n > commandParseLimits.integerDigitsMax) return undefined;
    const c = this.peek();
    if (c === 0x2e || c === 0x65 || c === 0x45) return undefined;
    let value = 0n;
    for (let i = start; i < this.pos; i++) value = value * 10n + BigInt(this.bytes[i]! - 0x30);
    return value <= safeIntegerMax ? value : undefined;
  }
}

function ascii(raw: Uint8Array): string {
  return String.fromCharCode(...raw);
}

/** A raw string usable as a name or id: 1..max bytes, no escapes. */
function plain(raw: Uint8Array | undefined, max: number): string | undefined {
  if (raw === undefined || raw.length === 0 || raw.length > max || raw.includes(BACKSLASH)) return undefined;
  return ascii(raw);
}

function parseArgs(s: Scanner): Map<string, CommandArg> | undefined {
  if (!s.take(0x7b)) return undefined;
  const args = new Map<string, CommandArg>();
  if (s.take(0x7d)) return args;
  do {
    const name = plain(s.string(), commandParseLimits.argNameBytesMax);
    if (name === undefined || !s.take(0x3a) || args.has(name) || args.size >= commandParseLimits.argsMax) return undefined;
    if (s.peek() === QUOTE) {
      const raw = s.string();
      if (raw === undefined) return undefined;
      args.set(name, { kind: 'string', raw });
    } else {
      const value = s.integer();
      if (value === undefined) return undefined;
      args.set(name, { kind: 'integer', value });
    }
  } while (s.take(0x2c));
  return s.take(0x7d) ? args : undefined;
}

/** Undefined when the bytes are not the prefix and one object with the five fields (COMMAND_INVALID). */
export function parseSignedCommand(bytes: Uint8Array): ParsedCommand | undefined {
  const prefix = commandSigningPrefixBytes;
  if (bytes.length < prefix.length || !prefix.every((b, i) => bytes[i] === b)) return undefined;
  const s = new Scanner(bytes);
  s.pos = prefix.length;
  if (!s.take(0x7b)) return undefined;
  const found: Partial<ParsedCommand> = {};
  if (!s.take(0x7d)) {
    do {
      const key = s.string();
      if (key === undefined || !s.take(0x3a)) return undefined;
      const name = key.includes(BACKSLASH) ? '' : ascii(key);
      if (name === 'device_id' || name === 'opcode' || name === 'device_seq' || name === 'expires_at' || name === 'args') {
        const field = name === 'device_id' ? 'deviceId' : name === 'device_seq' ? 'deviceSeq' : name === 'expires_at' ? 'expiresAt' : name;
        if (found[field] !== undefined) return undefined;
        if (name === 'device_id') found.deviceId = plain(s.string(), commandParseLimits.deviceIdBytesMax);
        else if (name === 'opcode') found.opcode = plain(s.string(), commandParseLimits.opcodeBytesMax);
        else if (name === 'device_seq') found.deviceSeq = s.integer();
        else if (name === 'expires_at') found.expiresAt = s.integer();
        else found.args = parseArgs(s);
        if (found[field] === undefined) return undefined;
      } else if (!s.skipValue(1)) {
        return undefined;
      }
    } while (s.take(0x2c));
    if (!s.take(0x7d)) return undefined;
  }
  if (s.pos !== bytes.length) return undefined;
  const { deviceId, deviceSeq, expiresAt, opcode, args } = found;
  if (deviceId === undefined || deviceSeq === undefined || deviceSeq < 1n || expiresAt === undefined || opcode === undefined || args === undefined) return undefined;
  return { deviceId, deviceSeq, expiresAt, opcode, args };
}
