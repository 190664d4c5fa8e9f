import { isIP } from 'node:net';
import { SdcError } from '../core/errors/index.js';

/**
 * X.509 name constraints (RFC 5280 4.2.1.10) for the serving CA: only permitted subtrees, DNS
 * names and IP ranges, so a browser that trusts the CA trusts it for this deployment's names and
 * nothing else (docs/decisions/0006-browser-serving-chain.md). @peculiar/x509 has no typed
 * extension for it, and the IP form (address plus mask) is not the SAN form its GeneralName
 * converter writes, so the DER is built and read here; the structure is fixed and small.
 */
export const oidNameConstraints = '2.5.29.30';
export const servingNamesMax = 32;

export interface PermittedNames {
  /** DNS subtrees: `example.com` permits it and every name below it. */
  readonly hostnames: readonly string[];
  /** IP ranges as `address/prefix`; a bare address in the input means one host. */
  readonly ipRanges: readonly string[];
}

const hostnamePattern = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Splits `--serving-name` values into DNS subtrees and IP ranges; a value that is neither is refused. */
export function parsePermittedNames(values: readonly string[]): PermittedNames {
  if (values.length === 0 || values.length > servingNamesMax) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', `a serving CA is constrained to 1 to ${servingNamesMax} names`);
  }
  const hostnames: string[] = [];
  const ipRanges: string[] = [];
  for (const value of values) {
    const [address, prefix, extra] = value.split('/');
    if (extra === undefined && address !== undefined && isIP(address) !== 0) {
      const bits = isIP(address) === 4 ? 32 : 128;
      const prefixBits = prefix === undefined ? bits : Number(prefix);
      if (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) throw new SdcError('TRUST_INVALID_ARGUMENT', `'${value}' has no valid prefix length`);
      if (!Number.isInteger(prefixBits) || prefixBits < 0 || prefixBits > bits) throw new SdcError('TRUST_INVALID_ARGUMENT', `'${value}' has a prefix longer than ${bits}`);
      ipRanges.push(`${address}/${prefixBits}`);
    } else if (hostnamePattern.test(value)) {
      hostnames.push(value.toLowerCase());
    } else {
      throw new SdcError('TRUST_INVALID_ARGUMENT', `'${value}' is not a DNS name, an IP address or an address/prefix range`);
    }
  }
  return { hostnames, ipRanges };
}

function ipBytes(address: string): Uint8Array {
  if (isIP(address) === 4) return Uint8Array.from(address.split('.').map(Number));
  // Expand `::` and an embedded IPv4 tail into eight 16-bit groups.
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    const b = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...new Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const out = new Uint8Array(16);
  groups.forEach((group, index) => {
    const value = parseInt(group, 16);
    out[index * 2] = value >> 8;
    out[index * 2 + 1] = value & 0xff;
  });
  return out;
}

function maskBytes(length: number, prefixBits: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let bit = 0; bit < prefixBits; bit += 1) out[bit >> 3]! |= 0x80 >> (bit & 7);
  return out;
}

function tlv(tag: number, content: Uint8Array): Uint8Array {
  const length = content.length;
  const header = length < 0x80 ? [tag, length] : length < 0x100 ? [tag, 0x81, length] : [tag, 0x82, length >> 8, length & 0xff];
  const out = new Uint8Array(header.length + length);
  out.set(header, 0);
  out.set(content, header.length);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** DER of NameConstraints { permittedSubtrees [0] } with dNSName [2] and iPAddress [7] (address || mask) bases. */
export function encodeNameConstraints(names: PermittedNames): ArrayBuffer {
  const subtrees: Uint8Array[] = [];
  for (const hostname of names.hostnames) subtrees.push(tlv(0x30, tlv(0x82, new TextEncoder().encode(hostname))));
  for (const range of names.ipRanges) {
    const [address, prefix] = range.split('/') as [string, string];
    const bytes = ipBytes(address);
    const mask = maskBytes(bytes.length, Number(prefix));
    const network = bytes.map((byte, index) => byte & mask[index]!);
    subtrees.push(tlv(0x30, tlv(0x87, concat([network, mask]))));
  }
  const der = tlv(0x30, tlv(0xa0, concat(subtrees)));
  return der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer;
}

function readTlv(der: Uint8Array, offset: number): { tag: number; start: number; end: number } {
  const tag = der[offset];
  let length = der[offset + 1];
  if (tag === undefined || length === undefined) throw new SdcError('TRUST_CERT_INVALID', 'name constraints are truncated');
  let start = offset + 2;
  if (length >= 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 2) throw new SdcError('TRUST_CERT_INVALID', 'name constraints have an unsupported length');
    length = 0;
    for (let index = 0; index < count; index += 1) length = (length << 8) | (der[start + index] ?? 0);
    start += count;
  }
  if (start + length > der.length) throw new SdcError('TRUST_CERT_INVALID', 'name constraints are truncated');
  return { tag, start, end: start + length };
}

/**
 * Reads back the permitted DNS and IP subtrees. An extension with excluded subtrees or another
 * kind of name is refused: we only write the form above, so anything else is not ours.
 */
export function decodeNameConstraints(derBuffer: ArrayBuffer | Uint8Array): PermittedNames {
  const der = derBuffer instanceof Uint8Array ? derBuffer : new Uint8Array(derBuffer);
  const outer = readTlv(der, 0);
  if (outer.tag !== 0x30) throw new SdcError('TRUST_CERT_INVALID', 'name constraints are not a SEQUENCE');
  const hostnames: string[] = [];
  const ipRanges: string[] = [];
  let offset = outer.start;
  while (offset < outer.end) {
    const part = readTlv(der, offset);
    if (part.tag !== 0xa0) throw new SdcError('TRUST_CERT_INVALID', 'name constraints other than permitted subtrees are not supported');
    let inner = part.start;
    while (inner < part.end) {
      const subtree = readTlv(der, inner);
      const base = readTlv(der, subtree.start);
      const value = der.subarray(base.start, base.end);
      if (base.tag === 0x82) hostnames.push(new TextDecoder().decode(value).toLowerCase());
      else if (base.tag === 0x87 && (value.length === 8 || value.length === 32)) ipRanges.push(rangeText(value));
      else throw new SdcError('TRUST_CERT_INVALID', 'a name constraint is neither a DNS name nor an IP range');
      inner = subtree.end;
    }
    offset = part.end;
  }
  return { hostnames, ipRanges };
}

function rangeText(value: Uint8Array): string {
  const half = value.length / 2;
  const address = value.subarray(0, half);
  const mask = value.subarray(half);
  let prefix = 0;
  for (const byte of mask) for (let bit = 7; bit >= 0; bit -= 1) if ((byte >> bit) & 1) prefix += 1;
  if (half === 4) return `${[...address].join('.')}/${prefix}`;
  const groups: string[] = [];
  for (let index = 0; index < 16; index += 2) groups.push(((address[index]! << 8) | address[index + 1]!).toString(16));
  return `${groups.join(':')}/${prefix}`;
}

/** Whether a server certificate name (DNS or IP) falls inside the permitted subtrees, as RFC 5280 matches them. */
export function namePermitted(names: PermittedNames, name: string): boolean {
  if (isIP(name) !== 0) {
    const bytes = ipBytes(name);
    return names.ipRanges.some((range) => {
      const [address, prefix] = range.split('/') as [string, string];
      const base = ipBytes(address);
      if (base.length !== bytes.length) return false;
      const mask = maskBytes(base.length, Number(prefix));
      return bytes.every((byte, index) => (byte & mask[index]!) === (base[index]! & mask[index]!));
    });
  }
  const lower = name.toLowerCase();
  return names.hostnames.some((base) => lower === base || lower.endsWith(`.${base}`));
}
