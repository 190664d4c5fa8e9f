import { readFile } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { writeFileAtomic } from '../../runtime/atomic-file.js';
import { createPairingToken, JsonFilePairingTokenStore, pairingTokenTtlMsMax } from '../../trust/pairing-tokens.js';
import { isRevocationReason, revocationReasons } from '../../trust/revocation.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import {
  integerOption, requireOption, stringOption, type Command, type CommandGroup, type ParsedCommandArgs,
} from '../command.js';
import { requireInitialisedDataDir } from '../data-dir.js';
import { durationOption, durationOptions, legacyHelp, type DurationOptionSpec } from '../duration-option.js';
import type { CliIo } from '../command.js';

const dataDirDefault = './data';
const publicFileMode = 0o644;
const dayMs = 24 * 60 * 60 * 1000;
const inputFileBytesMax = 64 * 1024;
const dirOption = { dir: { type: 'string' }, json: { type: 'boolean' } } as const;
const jsonHelp = ['--json', 'Print the result as one JSON object'] as const;
const validity: DurationOptionSpec = { name: 'validity', fallbackMs: 30 * 24 * 60 * 60 * 1000, minMs: 24 * 60 * 60 * 1000, maxMs: 397 * 24 * 60 * 60 * 1000, legacy: { name: 'days', unitMs: 24 * 60 * 60 * 1000 } };
const tokenTtl: DurationOptionSpec = { name: 'ttl', fallbackMs: 15 * 60_000, minMs: 60_000, maxMs: pairingTokenTtlMsMax, legacy: { name: 'ttl-minutes', unitMs: 60_000 } };

/**
 * The CA's modules, loaded when a command runs rather than at the top: they load the X.509 library,
 * which would otherwise cost every start of the CLI, `sdc --help` included, a large part of its time.
 */
async function trustModules() {
  const [{ generateCrl }, { parseDeviceCsr }, { EnrollmentService }, { rootKeyPassphraseEnv }, { initPki, loadIssuingPki, pkiPaths }, { parseCertificate }] = await Promise.all([
    import('../../trust/crl.js'), import('../../trust/device-csr.js'), import('../../trust/enrollment.js'), import('../../trust/key-files.js'),
    import('../../trust/pki-directory.js'), import('../../trust/x509-provider.js'),
  ]);
  return { generateCrl, parseDeviceCsr, EnrollmentService, rootKeyPassphraseEnv, initPki, loadIssuingPki, pkiPaths, parseCertificate };
}

/** The text for a reader, or with --json one JSON object with the same facts. */
function report(args: ParsedCommandArgs, io: CliIo, facts: Record<string, unknown>, text: string): void {
  io.stdout(args.values.json === true ? JSON.stringify(facts) + '\n' : text);
}
const dirHelp = ['--dir D', `Data directory; PKI files live in D/pki (default ${dataDirDefault})`] as const;

function dataDir(args: ParsedCommandArgs): string {
  return stringOption(args, 'dir', dataDirDefault);
}

/** Reads a small user-named input file; a missing or huge file is the user's mistake (CLI_INPUT). */
async function readInputFile(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new SdcError('CLI_INPUT', `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (text.length > inputFileBytesMax) throw new SdcError('CLI_INPUT', `${what} ${path} is larger than ${inputFileBytesMax} bytes`);
  return text;
}

const init: Command = {
  name: 'init',
  summary: 'Create the offline root CA and the online intermediate CA in D/pki',
  usage: '--dir D [--force]',
  optionHelp: [
    dirHelp,
    jsonHelp,
    ['--force', 'Replace existing CA files (device certificates of the old CA stop verifying)'],
  ],
  options: { ...dirOption, force: { type: 'boolean' } },
  async run(args, io) {
    const { rootKeyPassphraseEnv, initPki } = await trustModules();
    const passphrase = io.env[rootKeyPassphraseEnv];
    const result = await initPki({
      dataDir: dataDir(args),
      now: new Date(systemClock.nowMs()),
      random: systemRandom,
      force: args.values.force === true,
      rootKeyPassphrase: passphrase === undefined || passphrase === '' ? undefined : passphrase,
    });
    const { paths } = result;
    report(args, io, {
      root_cert: paths.rootCertPath, root_key: paths.rootKeyPath, root_key_encrypted: Boolean(passphrase), intermediate_cert: paths.intermediateCertPath,
      intermediate_not_after: result.intermediateNotAfter.toISOString(), intermediate_key: paths.intermediateKeyPath, root_sha256: result.rootFingerprintSha256,
    }, [
      `root CA:          ${paths.rootCertPath}`,
      `root key:         ${paths.rootKeyPath} (${passphrase ? 'encrypted' : `NOT encrypted; set ${rootKeyPassphraseEnv} to encrypt`}; keep it offline)`,
      `intermediate CA:  ${paths.intermediateCertPath} (valid until ${result.intermediateNotAfter.toISOString()})`,
      `intermediate key: ${paths.intermediateKeyPath}`,
      `root SHA-256:     ${result.rootFingerprintSha256}`,
    ].join('\n') + '\n');
    return 0;
  },
};

const issue: Command = {
  name: 'issue',
  summary: 'Issue a device certificate for an Ed25519 PEM CSR (device id = CSR CN)',
  usage: '--dir D --csr FILE --out FILE [--validity 30d] [--json]',
  optionHelp: [
    dirHelp,
    jsonHelp,
    ['--csr FILE', 'PEM certificate signing request, e.g. from `openssl req -new -key k.pem -subj /CN=dev-1`'],
    ['--out FILE', 'Where to write the device certificate (PEM)'],
    ['--validity D', 'Validity, like 30d, from 1d to 397d (default 30d)'],
    ...legacyHelp(validity),
  ],
  options: { ...dirOption, csr: { type: 'string' }, out: { type: 'string' }, ...durationOptions(validity) },
  async run(args, io) {
    const { parseDeviceCsr, loadIssuingPki } = await trustModules();
    const csrPem = await readInputFile(requireOption(args, 'csr'), 'CSR');
    const out = requireOption(args, 'out');
    const validityMs = durationOption(args, validity, io.stderr);
    const pki = await loadIssuingPki({ dataDir: dataDir(args), random: systemRandom });
    const { commonName } = await parseDeviceCsr(csrPem);
    const issued = await pki.issuer.issueDeviceCertificate({
      csrPem, deviceId: commonName, now: new Date(systemClock.nowMs()), validityMs,
    });
    await writeFileAtomic(out, issued.certificatePem + '\n', { mode: publicFileMode });
    report(args, io, { certificate: out, device_id: issued.deviceId, serial: issued.serialHex, not_after: issued.notAfter.toISOString() },
      `issued ${out}: device ${issued.deviceId}, serial ${issued.serialHex}, valid until ${issued.notAfter.toISOString()}\n`);
    return 0;
  },
};

const revoke: Command = {
  name: 'revoke',
  summary: 'Revoke a device certificate issued by this intermediate',
  usage: '--dir D --cert FILE [--reason R]',
  optionHelp: [
    dirHelp,
    jsonHelp,
    ['--cert FILE', 'The device certificate to revoke (PEM)'],
    ['--reason R', `One of ${revocationReasons.join(', ')} (default unspecified)`],
  ],
  options: { ...dirOption, cert: { type: 'string' }, reason: { type: 'string' } },
  async run(args, io) {
    const { loadIssuingPki, parseCertificate } = await trustModules();
    const certPem = await readInputFile(requireOption(args, 'cert'), 'certificate');
    const reason = stringOption(args, 'reason', 'unspecified');
    if (!isRevocationReason(reason)) throw new SdcError('CLI_USAGE', `--reason must be one of ${revocationReasons.join(', ')}`);
    let certificate;
    try {
      certificate = parseCertificate(certPem);
    } catch {
      throw new SdcError('CLI_INPUT', 'the --cert file is not a PEM certificate');
    }
    const pki = await loadIssuingPki({ dataDir: dataDir(args), random: systemRandom });
    const ours = certificate.issuer === pki.intermediate.certificate.subject
      && await certificate.verify({ publicKey: pki.intermediate.certificate.publicKey, signatureOnly: true });
    if (!ours) throw new SdcError('TRUST_CERT_UNTRUSTED', 'certificate was not issued by this intermediate CA');
    const serialHex = normalizeSerialHex(certificate.serialNumber);
    const added = await pki.revocations.revoke(serialHex, reason, new Date(systemClock.nowMs()));
    report(args, io, { serial: serialHex, reason, revoked: added, already_revoked: !added }, added ? `revoked serial ${serialHex} (${reason}); run 'sdc pki crl' to publish\n` : `serial ${serialHex} was already revoked\n`);
    return 0;
  },
};

const crl: Command = {
  name: 'crl',
  summary: 'Write the current CRL (signed by the intermediate, next update in 24 h) as PEM',
  usage: '--dir D --out FILE',
  optionHelp: [dirHelp, jsonHelp, ['--out FILE', 'Where to write the CRL (PEM, BEGIN X509 CRL)']],
  options: { ...dirOption, out: { type: 'string' } },
  async run(args, io) {
    const { generateCrl, loadIssuingPki } = await trustModules();
    const out = requireOption(args, 'out');
    const pki = await loadIssuingPki({ dataDir: dataDir(args), random: systemRandom });
    const signed = await generateCrl({ issuer: pki.intermediate, store: pki.revocations, now: new Date(systemClock.nowMs()) });
    await writeFileAtomic(out, signed.pem, { mode: publicFileMode });
    const count = (await pki.revocations.list()).length;
    report(args, io, { crl: out, crl_number: Number(signed.crlNumber), revoked: count, next_update: signed.nextUpdate.toISOString() }, `wrote ${out}: CRL number ${signed.crlNumber}, ${count} revoked, next update ${signed.nextUpdate.toISOString()}\n`);
    return 0;
  },
};

const pairingToken: Command = {
  name: 'pairing-token',
  summary: 'Create a one-time pairing token for a device id and print it (shown once; only its hash is stored)',
  usage: '--dir D --device ID [--ttl 15m] [--json]',
  optionHelp: [
    dirHelp,
    jsonHelp,
    ['--device ID', 'The device id the token is bound to'],
    ['--ttl D', `How long until the token expires, like 15m, from 1m to ${pairingTokenTtlMsMax / 60_000}m (default 15m)`],
    ...legacyHelp(tokenTtl),
  ],
  options: { ...dirOption, device: { type: 'string' }, ...durationOptions(tokenTtl) },
  async run(args, io) {
    const { pkiPaths } = await trustModules();
    const deviceId = requireOption(args, 'device');
    const ttlMs = durationOption(args, tokenTtl, io.stderr);
    // The token store lives in D/pki: a missing or uninitialised directory is refused, not half-created.
    await requireInitialisedDataDir(dataDir(args));
    const paths = pkiPaths(dataDir(args));
    const created = await createPairingToken({
      store: new JsonFilePairingTokenStore(paths.pairingTokensPath),
      deviceId, now: new Date(systemClock.nowMs()), random: systemRandom, ttlMs,
    });
    // The token alone on stdout, so `T=$(sdc pki pairing-token ...)` works; the note goes to stderr.
    report(args, io, { token: created.token, device_id: created.deviceId, expires_at: created.expiresAt.toISOString() }, created.token + '\n');
    io.stderr(`pairing token for device ${created.deviceId}, single use, expires ${created.expiresAt.toISOString()}\n`);
    return 0;
  },
};

const enroll: Command = {
  name: 'enroll',
  summary: 'Trade a pairing token and a CSR for a device certificate (the hand-run pairing path)',
  usage: '--dir D --token T --csr FILE --out FILE [--chain-out FILE]',
  optionHelp: [
    dirHelp,
    jsonHelp,
    ['--token T', 'The pairing token from `sdc pki pairing-token`'],
    ['--csr FILE', 'PEM CSR whose CN is the device id the token was created for'],
    ['--out FILE', 'Where to write the device certificate (PEM)'],
    ['--chain-out FILE', 'Where to write the CA chain, intermediate then root (PEM)'],
  ],
  options: {
    ...dirOption, token: { type: 'string' }, csr: { type: 'string' }, out: { type: 'string' }, 'chain-out': { type: 'string' },
  },
  async run(args, io) {
    const { parseDeviceCsr, EnrollmentService, loadIssuingPki } = await trustModules();
    const token = requireOption(args, 'token');
    const csrPem = await readInputFile(requireOption(args, 'csr'), 'CSR');
    const out = requireOption(args, 'out');
    const chainOut = args.values['chain-out'];
    const pki = await loadIssuingPki({ dataDir: dataDir(args), random: systemRandom });
    const { commonName } = await parseDeviceCsr(csrPem);
    const service = new EnrollmentService({ tokens: new JsonFilePairingTokenStore(pki.paths.pairingTokensPath), issuer: pki.issuer });
    const result = await service.enroll({ token, deviceId: commonName, csrPem, now: new Date(systemClock.nowMs()) });
    await writeFileAtomic(out, result.certificatePem + '\n', { mode: publicFileMode });
    if (typeof chainOut === 'string' && chainOut !== '') {
      await writeFileAtomic(chainOut, result.chainPems.map((pem) => pem + '\n').join(''), { mode: publicFileMode });
    }
    report(args, io, { device_id: commonName, certificate: out, serial: result.serialHex, not_after: result.notAfter.toISOString() }, `enrolled device ${commonName}: ${out}, serial ${result.serialHex}, valid until ${result.notAfter.toISOString()}\n`);
    return 0;
  },
};

export const pkiCommands: CommandGroup = {
  name: 'pki',
  summary: 'Device PKI: CA hierarchy, certificate issuance, revocation, CRLs and pairing tokens',
  commands: [init, issue, revoke, crl, pairingToken, enroll],
};
