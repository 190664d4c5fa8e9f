import { SdcError } from '../core/errors/index.js';
import type { CaMaterial } from './ca.js';
import { toPem } from './pem.js';
import type { RevocationEntry, RevocationReason, RevocationStore } from './revocation.js';
import { normalizeSerialHex, serialHexForEncoding } from './serial-number.js';
import { x509 } from './x509-provider.js';
import { createPublicKey, KeyObject, sign as signBytes, verify as verifyBytes } from 'node:crypto';
import { oidEd25519, readCertificateFields } from './certificate-fields.js';
import { childrenOf, contextConstructed, derTag, encodingOf, expectElement, readTime, readWhole, valueOf } from './der-reader.js';
import { derBitString, derElement, derOctetString, derOid, derPositiveIntegerFromHex, derSequence, derSmallInteger, derTime } from './der-writer.js';

/** How long relying parties may use a CRL before fetching a new one. Short, so a revocation takes effect within a day. */
export const crlNextUpdateMsDefault = 24 * 60 * 60 * 1000;
const oidCrlNumber = '2.5.29.20';
/** RFC 5280 5.2.3: CRL numbers fit in 20 octets. */
const crlNumberMax = (1n << 159n) - 1n;

const reasonCodes: Record<RevocationReason, x509.X509CrlReason> = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  affiliationChanged: x509.X509CrlReason.affiliationChanged,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
  privilegeWithdrawn: x509.X509CrlReason.privilegeWithdrawn,
};

export interface CreateCrlOptions {
  /** The CA that issued the revoked certificates (our intermediate). */
  issuer: CaMaterial;
  entries: readonly RevocationEntry[];
  crlNumber: bigint;
  now: Date;
  nextUpdateMs?: number;
}

export interface SignedCrl {
  /** PEM with OpenSSL's label, `-----BEGIN X509 CRL-----`. */
  readonly pem: string;
  readonly der: Uint8Array;
  readonly crlNumber: bigint;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
}

/**
 * The most DER bytes one entry of a CRL we sign takes: SEQUENCE header (2), INTEGER of a 20-octet
 * serial with a sign octet (2 + 21), GeneralizedTime (2 + 15) and the reason extension (14).
 * Measured 2026-12-06, morning: 56.0 bytes per entry at 100,000 such entries; our 16-octet
 * serials revoked before 2050 (UTCTime) take 49.0.
 */
export const crlEntryDerBytesMax = 56;
/** Everything in a CRL but its entries (issuer name, times, CRL number, AKI, signature, lengths): 208 bytes with none, measured. */
const crlFixedDerBytesMax = 4096;

/**
 * The most characters the PEM of a CRL we sign with `entriesMax` entries takes (base64 in lines of
 * 64 plus the armour): the bound every reader of a whole CRL derives from the revocation store's
 * maximum (the gateways' kv record, the fetch). 7,583,676 measured for 100,000 entries at
 * crlEntryDerBytesMax; this gives 7,588,928.
 */
export function crlPemCharsMax(entriesMax: number): number {
  if (!Number.isSafeInteger(entriesMax) || entriesMax < 0) throw new SdcError('TRUST_INVALID_ARGUMENT', 'entriesMax must be a non-negative safe integer');
  const base64Chars = Math.ceil((crlEntryDerBytesMax * entriesMax + crlFixedDerBytesMax) / 3) * 4;
  return base64Chars + Math.ceil(base64Chars / 64) + '-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n'.length;
}

/** An X.509 v2 CRL signed by `issuer`, with CRL number, AKI and a reason code on every entry. */
export async function createCrl(options: CreateCrlOptions): Promise<SignedCrl> {
  const nextUpdateMs = options.nextUpdateMs ?? crlNextUpdateMsDefault;
  if (!Number.isSafeInteger(nextUpdateMs) || nextUpdateMs <= 0) throw new SdcError('TRUST_INVALID_ARGUMENT', 'nextUpdateMs must be a positive safe integer');
  if (options.crlNumber < 1n || options.crlNumber > crlNumberMax) throw new SdcError('TRUST_INVALID_ARGUMENT', 'crlNumber must be from 1 to 2^159-1');
  // Whole seconds, as the DER's UTCTime/GeneralizedTime holds them: the times returned are the ones
  // a reader of the CRL sees, so "re-sign when a third is left" is computed on the same instants.
  const thisUpdate = new Date(Math.floor(options.now.getTime() / 1000) * 1000);
  const nextUpdate = new Date(thisUpdate.getTime() + nextUpdateMs);
  // Encoded here rather than by X509CrlGenerator (review h1, finding 2e): the library checks each
  // entry's serial against every earlier one (a findIndex per entry) and builds each entry through
  // its generic ASN.1 layers, 428 ms of CPU at 1,000 entries and 9,177 ms at 10,000. The bytes
  // are the library's for the same values (crl-der.test.ts compares them; an `unspecified` entry
  // differs only in carrying no empty extension list), and OpenSSL reads them (revocation.test.ts).
  const seen = new Set<string>();
  const revoked: Uint8Array[] = [];
  for (const entry of options.entries) {
    const serial = normalizeSerialHex(entry.serialHex);
    if (seen.has(serial)) throw new SdcError('TRUST_INVALID_ARGUMENT', `serial ${serial} is listed twice`);
    seen.add(serial);
    revoked.push(derSequence(
      derPositiveIntegerFromHex(serialHexForEncoding(serial)),
      derTime(entry.revokedAtMs),
      // No reason code for `unspecified` (RFC 5280 5.3.1), and then no crlEntryExtensions at all
      // (SIZE (1..MAX)); the library wrote an empty SEQUENCE there.
      ...(reasonCodes[entry.reason] === x509.X509CrlReason.unspecified ? [] : [derSequence(reasonExtensionDer[entry.reason])]),
    ));
  }
  const extensions = [
    new x509.Extension(oidCrlNumber, false, derPositiveInteger(options.crlNumber)),
    await x509.AuthorityKeyIdentifierExtension.create(options.issuer.certificate.publicKey),
  ].map((extension) => new Uint8Array(extension.rawData));
  const tbs = derSequence(
    crlVersionV2,
    ed25519AlgorithmId,
    readCertificateFields(new Uint8Array(options.issuer.certificate.rawData)).subjectName,
    derTime(thisUpdate.getTime()),
    derTime(nextUpdate.getTime()),
    // One concatenation of every entry (a spread of 100,000 arguments would overflow the stack).
    ...(revoked.length === 0 ? [] : [derElement(derTag.sequence, new Uint8Array(Buffer.concat(revoked)))]),
    derElement(contextConstructed(0), derSequence(...extensions)),
  );
  const signature = new Uint8Array(signBytes(null, tbs, KeyObject.from(options.issuer.privateKey)));
  const der = derSequence(tbs, ed25519AlgorithmId, derBitString(signature));
  return { pem: toPem('X509 CRL', der), der, crlNumber: options.crlNumber, thisUpdate, nextUpdate };
}

/** TBSCertList's version: v2 is INTEGER 1 (RFC 5280 5.1.2.1). */
const crlVersionV2 = derSmallInteger(1);
const ed25519AlgorithmId = derSequence(derOid(oidEd25519));
/** Each reason's whole CRL entry extension (id-ce-cRLReasons, not critical, ENUMERATED). */
const reasonExtensionDer = Object.fromEntries(Object.entries(reasonCodes).map(([reason, code]) => [
  reason, derSequence(derOid('2.5.29.21'), derOctetString(derElement(0x0a, Uint8Array.of(code)))),
])) as Record<RevocationReason, Uint8Array>;

/** Takes the next CRL number from the store and signs a CRL over all its entries. */
export async function generateCrl(options: { issuer: CaMaterial; store: RevocationStore; now: Date; nextUpdateMs?: number }): Promise<SignedCrl> {
  const entries = await options.store.list();
  const crlNumber = await options.store.nextCrlNumber();
  return createCrl({ issuer: options.issuer, entries, crlNumber, now: options.now, nextUpdateMs: options.nextUpdateMs });
}

/**
 * The serials (normalized) a CRL lists, once its signature verifies against `issuer` (our
 * intermediate): what a gateway reads from the CRL file so that revocations hold without the
 * key/value store. TRUST_CRL_INVALID for a CRL that does not parse or verify.
 */
export async function revokedSerialsOfCrl(options: { pem: string; issuer: x509.X509Certificate }): Promise<Set<string>> {
  return (await readVerifiedCrl(options)).serials;
}

/**
 * What a verified CRL says: its serials, its number (so a reader can refuse an older CRL put back)
 * and its thisUpdate and nextUpdate (so a reader can tell a CRL nobody re-signed in time).
 */
export interface VerifiedCrl {
  readonly serials: Set<string>;
  /** The CRL number extension (RFC 5280 5.2.3). */
  readonly crlNumber: bigint;
  readonly thisUpdateMs: number;
  /** When the issuer promised the next CRL (RFC 5280 5.1.2.5); past it this one may lack revocations. */
  readonly nextUpdateMs: number;
}

const oidCrlNumberDer = Buffer.from('0603551d14', 'hex');

/**
 * revokedSerialsOfCrl with the CRL's number, thisUpdate and nextUpdate, once its signature
 * verifies against `issuer` and its issuer name is `issuer`'s subject (byte for byte, as a path is
 * built). A CRL without a number or a nextUpdate is TRUST_CRL_INVALID: RFC 5280 (5.1.2.5, 5.2.3)
 * has conforming issuers include both, ours always does, and without them a reader could neither
 * refuse an older CRL put back nor tell that nobody re-signed it in time.
 */
export async function readVerifiedCrl(options: { pem: string; issuer: x509.X509Certificate }): Promise<VerifiedCrl> {
  let crlNumber: bigint | null = null;
  let thisUpdateMs: number;
  let nextUpdateMs: number | null = null;
  // Read with der-reader rather than x509.X509Crl (review h1, finding 2e): asn1js refuses input of
  // more than 10,000 ASN.1 nodes, so a CRL of more than about 1,200 entries did not parse, and a
  // gateway could not read the CRL of a fleet with that many live revocations.
  let serials: Set<string>;
  let tbs: Uint8Array;
  let signature: Uint8Array;
  try {
    const match = /-----BEGIN X509 CRL-----([A-Za-z0-9+/=\s]+)-----END X509 CRL-----/.exec(options.pem);
    if (match === null) throw new SdcError('TRUST_CERT_INVALID', 'no X509 CRL PEM block');
    const der = new Uint8Array(Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64'));
    const outer = readWhole(der, derTag.sequence, 'CertificateList');
    const parts = childrenOf(der, outer);
    if (parts.length !== 3 || parts[0]!.tag !== derTag.sequence || parts[2]!.tag !== derTag.bitString) throw new SdcError('TRUST_CERT_INVALID', 'CertificateList is not TBS, algorithm, signature');
    if (!Buffer.from(encodingOf(der, parts[1]!)).equals(ed25519AlgorithmId)) throw new SdcError('TRUST_CERT_INVALID', 'the CRL is not signed with Ed25519');
    tbs = encodingOf(der, parts[0]!);
    const bits = valueOf(der, parts[2]!);
    if (bits[0] !== 0) throw new SdcError('TRUST_CERT_INVALID', 'signature BIT STRING has unused bits');
    signature = bits.subarray(1);
    const fields = childrenOf(der, parts[0]!);
    // version, signature, issuer, thisUpdate, then nextUpdate if a time, then the entries if a SEQUENCE.
    const issuerAt = fields[0]?.tag === derTag.integer ? 2 : 1;
    const issuerName = fields[issuerAt];
    if (issuerName?.tag !== derTag.sequence || !Buffer.from(encodingOf(der, issuerName)).equals(Buffer.from(options.issuer.subjectName.toArrayBuffer()))) {
      throw new SdcError('TRUST_CERT_INVALID', 'the CRL names another issuer');
    }
    const thisUpdate = fields[issuerAt + 1];
    if (thisUpdate === undefined) throw new SdcError('TRUST_CERT_INVALID', 'the CRL has no thisUpdate');
    thisUpdateMs = readTime(der, thisUpdate);
    let at = issuerAt + 2;
    if (fields[at]?.tag === derTag.utcTime || fields[at]?.tag === derTag.generalizedTime) {
      nextUpdateMs = readTime(der, fields[at]!);
      at += 1;
    }
    serials = new Set<string>();
    const list = fields[at];
    if (list !== undefined && list.tag === derTag.sequence) {
      for (let offset = list.valueStart; offset < list.end;) {
        const entry = expectElement(der, offset, list.end, derTag.sequence, 'revoked certificate');
        const serial = expectElement(der, entry.valueStart, entry.end, derTag.integer, 'revoked serial');
        serials.add(normalizeSerialHex(Buffer.from(valueOf(der, serial)).toString('hex').replace(/^(00)+(?=.)/, '')));
        offset = entry.end;
      }
    }
    const extensions = fields.find((field) => field.tag === contextConstructed(0));
    if (extensions !== undefined) {
      const list = expectElement(der, extensions.valueStart, extensions.end, derTag.sequence, 'crlExtensions');
      for (let offset = list.valueStart; offset < list.end;) {
        const extension = expectElement(der, offset, list.end, derTag.sequence, 'extension');
        const members = childrenOf(der, extension);
        if (members[0] !== undefined && Buffer.from(encodingOf(der, members[0])).equals(oidCrlNumberDer)) {
          const value = members[members.length - 1]!;
          if (value.tag !== derTag.octetString) throw new SdcError('TRUST_CERT_INVALID', 'CRL number is not an OCTET STRING');
          const octets = valueOf(der, value);
          const number = readWhole(octets, derTag.integer, 'CRL number');
          crlNumber = BigInt(`0x${Buffer.from(valueOf(octets, number)).toString('hex') || '0'}`);
        }
        offset = extension.end;
      }
    }
  } catch (error) {
    throw new SdcError('TRUST_CRL_INVALID', 'the CRL does not parse', {}, { cause: error });
  }
  if (crlNumber === null) throw new SdcError('TRUST_CRL_INVALID', 'the CRL has no CRL number');
  if (nextUpdateMs === null || nextUpdateMs < thisUpdateMs) throw new SdcError('TRUST_CRL_INVALID', 'the CRL has no nextUpdate, or one before its thisUpdate');
  const publicKey = createPublicKey({ key: Buffer.from(options.issuer.publicKey.rawData), format: 'der', type: 'spki' });
  if (!verifyBytes(null, tbs, publicKey, signature)) throw new SdcError('TRUST_CRL_INVALID', 'the CRL is not signed by our intermediate CA');
  return { serials, crlNumber, thisUpdateMs, nextUpdateMs };
}

/** DER INTEGER for a positive value below 2^159 (content at most 20 octets, so a short-form length). */
function derPositiveInteger(value: bigint): Uint8Array<ArrayBuffer> {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = '0' + hex;
  if (Number.parseInt(hex.slice(0, 2), 16) >= 0x80) hex = '00' + hex;
  const content = Buffer.from(hex, 'hex');
  return Uint8Array.from([0x02, content.length, ...content]);
}
