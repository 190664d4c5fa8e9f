import { readFile } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { fileExists, privateFileMode, writeFileAtomic } from '../../runtime/atomic-file.js';
import { createPairingToken, createPairingTokens, deviceIdsFromPrefix, JsonFilePairingTokenStore, pairingTokensPerBatchMax, pairingTokenTtlMsMax } from '../../trust/pairing-tokens.js';
import { deviceIdRuleText, isDeviceId } from '../../core/protocol/device-id.js';
import { isRevocationReason, revocationReasons } from '../../trust/revocation.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import {
  integerOption, requireOption, stringOption, type Command, type CommandGroup, type ParsedCommandArgs,
} from '../command.js';
import { requireInitialisedDataDir } from '../data-dir.js';
import { rootKeyProtection, rootKeyProtectionHelp, rootKeyProtectionOptions } from '../root-key-passphrase.js';
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
  const [{ generateCrl }, { parseDeviceCsr }, { EnrollmentService }, { initPki, loadIssuingPki, pkiPaths, requireNoCa, createServingCa }, { parseCertificate }] = await Promise.all([
    import('../../trust/crl.js'), import('../../trust/device-csr.js'), import('../../trust/enrollment.js'),
    import('../../trust/pki-directory.js'), import('../../trust/x509-provider.js'),
  ]);
  return { generateCrl, parseDeviceCsr, EnrollmentService, initPki, loadIssuingPki, pkiPaths, requireNoCa, createServingCa, parseCertificate };
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

// The serving CA is name-constrained (decision 0006): it can issue only for these names and
// localhost/127.0.0.1/::1, so give every name `sdc serve --server-name` will use for the API.
const servingNameHelp = ['--serving-name NAME', 'A DNS name (and the names below it), IP address or address/prefix the serving CA may issue for; repeat (localhost and loopback always)'] as const;
const servingNameOption = { 'serving-name': { type: 'string', multiple: true } } as const;
function servingNames(args: ParsedCommandArgs): string[] {
  return (args.values['serving-name'] as string[] | undefined) ?? [];
}

const init: Command = {
  name: 'init',
  summary: 'Create the offline root CA (key encrypted) and the online intermediate CA in D/pki',
  usage: '--dir D [--root-key-passphrase-file F | --insecure-plain-root-key] [--serving-name NAME]... [--force]',
  optionHelp: [
    dirHelp,
    jsonHelp,
    ...rootKeyProtectionHelp,
    servingNameHelp,
    ['--force', 'Replace existing CA files (device certificates of the old CA stop verifying)'],
  ],
  options: { ...dirOption, force: { type: 'boolean' }, ...rootKeyProtectionOptions, ...servingNameOption },
  async run(args, io) {
    const { initPki, pkiPaths, requireNoCa } = await trustModules();
    // Before asking for a passphrase: nobody should type one twice to learn that a CA is there.
    if (args.values.force !== true) await requireNoCa(pkiPaths(dataDir(args)));
    const rootKey = await rootKeyProtection(args, io);
    const result = await initPki({
      dataDir: dataDir(args),
      now: new Date(systemClock.nowMs()),
      random: systemRandom,
      force: args.values.force === true,
      rootKey,
      servingNames: servingNames(args),
    });
    const { paths } = result;
    // The artifact key devices seal uploads to (docs/artifacts.md), made with the CA like the other deployment keys.
    const { loadOrCreateArtifactKey } = await import('../../server/ota/encrypted-artifacts.js');
    await loadOrCreateArtifactKey(dataDir(args));
    if (!result.rootKeyEncrypted) {
      io.stderr(`sdc: WARNING: the root CA key ${paths.rootKeyPath} is NOT encrypted (--insecure-plain-root-key): for tests only; whoever reads it can issue certificates\n`);
    }
    report(args, io, {
      root_cert: paths.rootCertPath, root_key: paths.rootKeyPath, root_key_encrypted: result.rootKeyEncrypted, intermediate_cert: paths.intermediateCertPath,
      intermediate_not_after: result.intermediateNotAfter.toISOString(), intermediate_key: paths.intermediateKeyPath, root_sha256: result.rootFingerprintSha256,
      serving_ca_cert: paths.servingCaCertPath, serving_ca_key: paths.servingCaKeyPath,
    }, [
      `root CA:          ${paths.rootCertPath}`,
      `root key:         ${paths.rootKeyPath} (${result.rootKeyEncrypted ? 'encrypted' : 'NOT encrypted'}; keep it offline)`,
      `intermediate CA:  ${paths.intermediateCertPath} (valid until ${result.intermediateNotAfter.toISOString()})`,
      `intermediate key: ${paths.intermediateKeyPath}`,
      `root SHA-256:     ${result.rootFingerprintSha256}`,
      `serving CA:       ${paths.servingCaCertPath} (ECDSA P-256, for browsers only: trust it in the browser to open the console; docs/viewer.md)`,
    ].join('\n') + '\n');
    return 0;
  },
};

const servingCa: Command = {
  name: 'serving-ca',
  summary: 'Create the ECDSA P-256 serving CA for browsers in D/pki (made by init; for data directories made before it)',
  usage: '--dir D [--serving-name NAME]... [--force] [--json]',
  optionHelp: [dirHelp, jsonHelp, servingNameHelp, ['--force', 'Replace an existing serving CA (browsers must then trust the new one)']],
  options: { ...dirOption, force: { type: 'boolean' }, ...servingNameOption },
  async run(args, io) {
    const { pkiPaths, createServingCa } = await trustModules();
    await requireInitialisedDataDir(dataDir(args));
    const paths = pkiPaths(dataDir(args));
    if (args.values.force !== true && await fileExists(paths.servingCaCertPath)) {
      throw new SdcError('TRUST_PKI_EXISTS', `${paths.servingCaCertPath} already exists (use --force to replace)`);
    }
    await createServingCa({ paths, now: new Date(systemClock.nowMs()), random: systemRandom, servingNames: servingNames(args) });
    report(args, io, { serving_ca_cert: paths.servingCaCertPath, serving_ca_key: paths.servingCaKeyPath },
      `serving CA: ${paths.servingCaCertPath} (key ${paths.servingCaKeyPath}); sdc serve issues the browsers' certificate from it at its next start\n`);
    return 0;
  },
};

const rotateCommandKey: Command = {
  name: 'rotate-command-key',
  summary: 'Rotate the control plane\'s command-signing key in D/keys (the old one is kept as previous); control planes take it at their next start',
  usage: '--dir D [--json]',
  optionHelp: [dirHelp, jsonHelp],
  options: { ...dirOption },
  async run(args, io) {
    await requireInitialisedDataDir(dataDir(args));
    // Loaded here, not at the top: --help must not load the service modules.
    const { rotateCommandSigningKey } = await import('../../server/materials/materials.js');
    const kids = await rotateCommandSigningKey(dataDir(args), systemRandom);
    report(args, io, { current_kid: kids.current, previous_kid: kids.previous },
      `command-signing key rotated: ${kids.current} (previous ${kids.previous}, kept). Restart the control planes; devices pin the new key, `
      + 'and their kernels take it with the rotation the control plane signs, at their next certificate renewal\n');
    return 0;
  },
};

const gatewayCertValidity: DurationOptionSpec = { name: 'validity', fallbackMs: 90 * 24 * 60 * 60 * 1000, minMs: 24 * 60 * 60 * 1000, maxMs: 397 * 24 * 60 * 60 * 1000 };

const gatewayCert: Command = {
  name: 'gateway-cert',
  summary: 'Issue the gateways\' TLS certificate and publish what `sdc gateway` loads (it holds no CA key and issues nothing, decision 0018)',
  usage: '--dir D [--gateway-id ID] [--server-name NAME]... [--validity 90d] [--json]',
  optionHelp: [
    dirHelp,
    jsonHelp,
    ['--gateway-id ID', 'Write D/tls/gateway-ID.pem for that gateway only (default: D/tls/gateway.pem, which every gateway without its own uses)'],
    ['--server-name NAME', 'DNS name or IP address devices reach the gateways by (repeatable; localhost, 127.0.0.1 and ::1 are always included)'],
    ['--validity D', 'Validity, like 90d, from 1d to 397d (default 90d); gateways warn at start when a third is left'],
  ],
  options: { ...dirOption, 'gateway-id': { type: 'string' }, 'server-name': { type: 'string', multiple: true }, ...durationOptions(gatewayCertValidity) },
  async run(args, io) {
    await requireInitialisedDataDir(dataDir(args));
    const gatewayId = args.values['gateway-id'] as string | undefined;
    if (gatewayId !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(gatewayId)) {
      throw new SdcError('CLI_USAGE', `--gateway-id ${gatewayId} is not 1 to 64 of [A-Za-z0-9._-] starting with a letter or digit`);
    }
    const names = (args.values['server-name'] as string[] | undefined) ?? [];
    const { isIP } = await import('node:net');
    const { issueGatewayCertificate } = await import('../../server/materials/gateway-materials.js');
    const issued = await issueGatewayCertificate({
      dataDir: dataDir(args), clock: systemClock, random: systemRandom, ...(gatewayId === undefined ? {} : { gatewayId }),
      serverHostnames: ['localhost', ...names.filter((name) => isIP(name) === 0)],
      serverIpAddresses: ['127.0.0.1', '::1', ...names.filter((name) => isIP(name) !== 0)],
      validityMs: durationOption(args, gatewayCertValidity, io.stderr),
    });
    report(args, io, { certificate: issued.certPath, key: issued.keyPath, not_after: issued.notAfter, command_kid: issued.commandKid },
      `gateway certificate ${issued.certPath} (key ${issued.keyPath}), valid until ${issued.notAfter}; gateways load it at their next start\n`);
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
  summary: 'Create one-time pairing tokens: one for --device (printed), or --count N for a fleet (written to --out; shown once, only hashes are stored)',
  usage: '--dir D --device ID [--ttl 15m] [--json] | --count N --prefix P [--first K] --out FILE [--api | --dir D] [--ttl 15m] [--json]',
  optionHelp: [
    dirHelp,
    jsonHelp,
    ['--device ID', 'The device id the token is bound to'],
    ['--count N', `Bulk: tokens for N devices at once, 1 to ${pairingTokensPerBatchMax.toLocaleString('en-US')} (all or none)`],
    ['--prefix P', 'Bulk: device ids are P and the index, zero-padded (P0001, P0002, ...)'],
    ['--first K', 'Bulk: the first index (default 1), to continue a fleet in a later batch'],
    ['--out FILE', 'Bulk: where the tokens go, CSV device_id,token,expires_at, mode 0600; refused if it exists'],
    ['--api', 'Bulk: create them on the control plane (POST /v1/pairing-tokens, with the login from `sdc login`) instead of in D/pki'],
    ['--ttl D', `How long until the token expires, like 15m, from 1m to ${pairingTokenTtlMsMax / 60_000}m (default 15m)`],
    ...legacyHelp(tokenTtl),
  ],
  options: {
    ...dirOption, device: { type: 'string' }, count: { type: 'string' }, prefix: { type: 'string' }, first: { type: 'string' }, out: { type: 'string' },
    api: { type: 'boolean' }, ...durationOptions(tokenTtl),
  },
  async run(args, io) {
    if (args.values.count !== undefined || args.values.prefix !== undefined) return bulkPairingTokens(args, io);
    if (args.values.api === true || args.values.out !== undefined || args.values.first !== undefined) {
      throw new SdcError('CLI_USAGE', '--api, --out and --first are for bulk tokens: give --count and --prefix');
    }
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

interface BulkToken { readonly device_id: string; readonly token: string; readonly expires_at_ms: number }

/**
 * `--count N --prefix P --out F`: a fleet's tokens in one batch, in D/pki's file store or on the
 * control plane (`--api`). Every option is checked, and the output file refused if it exists,
 * before a token is created: the secrets exist only in that file afterwards.
 */
async function bulkPairingTokens(args: ParsedCommandArgs, io: CliIo): Promise<number> {
  if (args.values.device !== undefined) throw new SdcError('CLI_USAGE', 'give either --device or --count with --prefix');
  const count = integerOption(args, 'count', 0, 1, pairingTokensPerBatchMax);
  if (args.values.count === undefined) throw new SdcError('CLI_USAGE', 'missing required option --count');
  const prefix = requireOption(args, 'prefix');
  const first = integerOption(args, 'first', 1, 0, 1_000_000_000);
  const out = requireOption(args, 'out');
  const ttlMs = durationOption(args, tokenTtl, io.stderr);
  const deviceIds = deviceIdsFromPrefix({ prefix, count, first });
  for (const id of [deviceIds[0]!, deviceIds.at(-1)!]) {
    if (!isDeviceId(id)) throw new SdcError('CLI_USAGE', `--prefix ${prefix} makes the device id ${id}, which is not ${deviceIdRuleText}`);
  }
  if (await fileExists(out)) throw new SdcError('CLI_INPUT', `${out} exists; the tokens go to a new file (choose another --out)`);
  const tokens = args.values.api === true ? await bulkOnControlPlane(io, { prefix, count, first, ttlMs }) : await bulkInDataDir(args, deviceIds, ttlMs);
  const csv = ['device_id,token,expires_at', ...tokens.map((t) => `${t.device_id},${t.token},${new Date(t.expires_at_ms).toISOString()}`)].join('\n') + '\n';
  await writeFileAtomic(out, csv, { mode: privateFileMode });
  const expiresAt = new Date(tokens[0]!.expires_at_ms).toISOString();
  report(args, io, { out, count: tokens.length, first_device: tokens[0]!.device_id, last_device: tokens.at(-1)!.device_id, expires_at: expiresAt, where: args.values.api === true ? 'control-plane' : 'data-dir' },
    `wrote ${tokens.length} pairing tokens (${tokens[0]!.device_id} .. ${tokens.at(-1)!.device_id}, single use, expire ${expiresAt}) to ${out}\n`);
  return 0;
}

async function bulkInDataDir(args: ParsedCommandArgs, deviceIds: readonly string[], ttlMs: number): Promise<BulkToken[]> {
  const { pkiPaths } = await trustModules();
  await requireInitialisedDataDir(dataDir(args));
  const created = await createPairingTokens({
    store: new JsonFilePairingTokenStore(pkiPaths(dataDir(args)).pairingTokensPath), deviceIds, now: new Date(systemClock.nowMs()), random: systemRandom, ttlMs,
  });
  return created.map((c) => ({ device_id: c.deviceId, token: c.token, expires_at_ms: c.expiresAt.getTime() }));
}

async function bulkOnControlPlane(io: CliIo, batch: { prefix: string; count: number; first: number; ttlMs: number }): Promise<BulkToken[]> {
  const { apiClient } = await import('../api-client.js');
  const api = await apiClient(io);
  const answer = await api.post<{ items: BulkToken[] }>('/v1/pairing-tokens', { prefix: batch.prefix, count: batch.count, first: batch.first, ttl_ms: batch.ttlMs });
  if (!Array.isArray(answer.items) || answer.items.length !== batch.count) {
    throw new SdcError('CLI_INPUT', `the control plane answered ${Array.isArray(answer.items) ? answer.items.length : 'no'} tokens for ${batch.count} devices`);
  }
  return answer.items;
}

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
  commands: [init, servingCa, rotateCommandKey, gatewayCert, issue, revoke, crl, pairingToken, enroll],
};
