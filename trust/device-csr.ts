import { SdcError } from '../core/errors/index.js';
import { oidCommonName, requireDeviceId } from './device-profile.js';
import { ed25519Algorithm, x509 } from './x509-provider.js';

/** An Ed25519 CSR with one CN is a few hundred bytes; anything far larger is not ours. */
export const csrPemLengthMax = 8192;

export interface DeviceCsr {
  readonly request: x509.Pkcs10CertificateRequest;
  /** The subject CN, already checked to be a well-formed device id. */
  readonly commonName: string;
}

/**
 * Parses a PEM CSR and checks what issuance depends on: an Ed25519 key, a valid
 * self-signature (proof that the requester holds the private key) and a single CN that is a
 * well-formed device id. Only the key and the CN are used from a CSR; its requested
 * extensions are ignored, the profile decides them.
 */
export async function parseDeviceCsr(csrPem: string): Promise<DeviceCsr> {
  if (csrPem.length > csrPemLengthMax) throw new SdcError('TRUST_CSR_INVALID', `CSR is longer than ${csrPemLengthMax} characters`);
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (error) {
    throw new SdcError('TRUST_CSR_INVALID', 'CSR cannot be parsed as PEM PKCS#10', {}, { cause: error });
  }
  if (request.publicKey.algorithm.name !== ed25519Algorithm.name || request.signatureAlgorithm.name !== ed25519Algorithm.name) {
    throw new SdcError('TRUST_CSR_KEY_ALGORITHM', `CSR key algorithm is ${request.publicKey.algorithm.name}, not Ed25519`);
  }
  let signatureOk = false;
  try {
    signatureOk = await request.verify();
  } catch {
    signatureOk = false;
  }
  if (!signatureOk) throw new SdcError('TRUST_CSR_INVALID', 'CSR self-signature does not verify');
  const commonNames = request.subjectName.getField(oidCommonName);
  if (commonNames.length !== 1) throw new SdcError('TRUST_CSR_SUBJECT_MISMATCH', 'CSR subject must have exactly one CN');
  return { request, commonName: requireDeviceId(commonNames[0]!) };
}
