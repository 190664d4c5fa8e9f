import { SdcError } from '../core/errors/index.js';
import type { CaMaterial } from './ca.js';
import { toPem } from './pem.js';
import type { RevocationEntry, RevocationReason, RevocationStore } from './revocation.js';
import { normalizeSerialHex, serialHexForEncoding } from './serial-number.js';
import { ed25519Algorithm, x509 } from './x509-provider.js';

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

/** An X.509 v2 CRL signed by `issuer`, with CRL number, AKI and a reason code on every entry. */
export async function createCrl(options: CreateCrlOptions): Promise<SignedCrl> {
  const nextUpdateMs = options.nextUpdateMs ?? crlNextUpdateMsDefault;
  if (!Number.isSafeInteger(nextUpdateMs) || nextUpdateMs <= 0) throw new SdcError('TRUST_INVALID_ARGUMENT', 'nextUpdateMs must be a positive safe integer');
  if (options.crlNumber < 1n || options.crlNumber > crlNumberMax) throw new SdcError('TRUST_INVALID_ARGUMENT', 'crlNumber must be from 1 to 2^159-1');
  // Whole seconds, as the DER's UTCTime/GeneralizedTime holds them: the times returned are the ones
  // a reader of the CRL sees, so "re-sign when a third is left" is computed on the same instants.
  const thisUpdate = new Date(Math.floor(options.now.getTime() / 1000) * 1000);
  const nextUpdate = new Date(thisUpdate.getTime() + nextUpdateMs);
  const crl = await x509.X509CrlGenerator.create({
    issuer: options.issuer.certificate.subjectName,
    thisUpdate,
    nextUpdate,
    signingKey: options.issuer.privateKey,
    signingAlgorithm: ed25519Algorithm,
    extensions: [
      new x509.Extension(oidCrlNumber, false, derPositiveInteger(options.crlNumber)),
      await x509.AuthorityKeyIdentifierExtension.create(options.issuer.certificate.publicKey),
    ],
    entries: options.entries.map((entry) => ({
      serialNumber: serialHexForEncoding(entry.serialHex),
      revocationDate: new Date(entry.revokedAtMs),
      reason: reasonCodes[entry.reason],
    })),
  });
  const der = new Uint8Array(crl.rawData);
  return { pem: toPem('X509 CRL', der), der, crlNumber: options.crlNumber, thisUpdate, nextUpdate };
}

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
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(options.pem);
  } catch (error) {
    throw new SdcError('TRUST_CRL_INVALID', 'the CRL does not parse', {}, { cause: error });
  }
  if (!(await crl.verify({ publicKey: options.issuer.publicKey }))) throw new SdcError('TRUST_CRL_INVALID', 'the CRL is not signed by our intermediate CA');
  return new Set(crl.entries.map((entry) => normalizeSerialHex(entry.serialNumber)));
}

/** DER INTEGER for a positive value below 2^159 (content at most 20 octets, so a short-form length). */
function derPositiveInteger(value: bigint): Uint8Array<ArrayBuffer> {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = '0' + hex;
  if (Number.parseInt(hex.slice(0, 2), 16) >= 0x80) hex = '00' + hex;
  const content = Buffer.from(hex, 'hex');
  return Uint8Array.from([0x02, content.length, ...content]);
}
