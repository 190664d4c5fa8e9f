import WebSocket from 'ws';
import { createCsrPem } from '../../../agent/enrollment.js';
import { SdcError } from '../../../core/errors/index.js';
import { kvKeys } from '../../../server/bus-contract/streams.js';
import type { Deployment } from '../../../server/deployment/deployment.js';
import type { DeploymentMaterials } from '../../../server/materials/materials.js';
import { TestAgent, type DeviceMaterial } from '../../../server/gateway/test-support.js';
import { createNodeEd25519Provider, pemFromPrivateSeed } from '../../../runtime/ed25519-node.js';
import { httpsJson } from '../../../runtime/https-json.js';
import { systemClock, systemRandom } from '../../../runtime/system.js';
import { exportPkcs8Der, generateEd25519KeyPair } from '../../../trust/ed25519-keys.js';
import { JwtAuthority } from '../../../trust/jwt-authority.js';
import { MemoryJwtKeyStore } from '../../../trust/jwt-key-store.js';
import { toPem } from '../../../trust/pem.js';
import { normalizeSerialHex } from '../../../trust/serial-number.js';
import { ed25519Algorithm, parseCertificate, x509 } from '../../../trust/x509-provider.js';

/**
 * "No unauthenticated access", checked from outside during and after a fault (issue 11): three
 * TLS clients try the gateway (no certificate, a self-signed one, a revoked one of ours) and three
 * HTTP calls try to create a command (no token, a malformed token, a token signed by a key that is
 * not ours). Each must be refused with its expected code, and none may ever open a session or
 * create a command: afterwards no probe device has a presence key and no command has the probe
 * opcode. The probes go to the gateway and the API directly, not through the agents' proxy, so
 * that a store outage or a restarted gateway is tried while it lasts.
 */

const provider = createNodeEd25519Provider();
/** Not in the chaos workload's mix, so any command with it came from a probe. */
export const probeOpcode = 'EXEC_ROLLBACK_UPDATE';
const probeTimeoutMs = 10_000;

export interface ProbeOutcome {
  readonly probe: string;
  readonly phase: string;
  /** What came back: an SdcError code (AUTH_ERROR or HTTP error body), a TLS/socket error code, or AUTH_ACK / HTTP_2xx. */
  readonly outcome: string;
  /** The codes this probe must get (a gateway down at that moment is `unreachable`, which refuses too). */
  readonly expected: readonly string[];
  readonly held: boolean;
}

export interface ProbeKit {
  readonly selfSigned: DeviceMaterial;
  readonly revoked: DeviceMaterial;
  readonly forgedToken: string;
  /** Any device of the run (the probe's HTTP calls name it, so that only the token can refuse them). */
  readonly targetDeviceId: string;
}

/** TLS handshake refusals: TLS 1.3 reports the server's alert on the client's first read. */
const tlsRefused = ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'ECONNRESET', 'EPIPE'];
const unreachable = ['unreachable'];

async function selfSignedDevice(deviceId: string): Promise<DeviceMaterial> {
  const keys = await generateEd25519KeyPair(systemRandom);
  const nowMs = systemClock.nowMs();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: `CN=${deviceId}`, notBefore: new Date(nowMs - 60_000), notAfter: new Date(nowMs + 86_400_000), keys, signingAlgorithm: ed25519Algorithm,
  });
  const pkcs8 = await exportPkcs8Der(keys.privateKey);
  const seed = pkcs8.slice(pkcs8.length - 32);
  return { deviceId, certPem: certificate.toString('pem'), keyPem: toPem('PRIVATE KEY', pkcs8), seed, publicKey: provider.publicKeyFromSeed(seed), serialHex: '01' };
}

/** A device enrolled through the control plane and revoked at once: its certificate chains to our CA and is on the CRL. */
async function revokedDevice(deployment: Deployment, deviceId: string): Promise<DeviceMaterial> {
  const cp = deployment.controlPlane!;
  const actor = 'chaos-probe';
  const { token } = await cp.devices.createPairingToken({ actor, deviceId });
  const seed = systemRandom.bytes(32);
  const answer = await cp.devices.enroll({ deviceId, token, csrPem: await createCsrPem(seed, deviceId) });
  await cp.devices.revoke({ actor, deviceId, reason: 'keyCompromise' });
  return {
    deviceId, certPem: answer.certificate_pem, keyPem: pemFromPrivateSeed(seed), seed, publicKey: provider.publicKeyFromSeed(seed),
    serialHex: normalizeSerialHex(parseCertificate(answer.certificate_pem).serialNumber),
  };
}

/** A well-formed operator token for an admin, signed by a key the control plane never published. */
async function forgedToken(admin: string): Promise<string> {
  const foreign = await JwtAuthority.create({ store: new MemoryJwtKeyStore(), clock: systemClock, issuer: 'sdc-control-plane', audience: 'sdc-api', random: systemRandom });
  return foreign.issue({ sub: admin, role: 'admin' });
}

/** Every run's kit, the store cuts' included (they once ran without the revoked device: docs/chaos.md). */
export async function prepareProbes(options: { deployment: Deployment; tag: string; admin: string; targetDeviceId: string }): Promise<ProbeKit> {
  return {
    selfSigned: await selfSignedDevice(`chaos-probe-${options.tag}-selfsigned`),
    revoked: await revokedDevice(options.deployment, `chaos-probe-${options.tag}-revoked`),
    forgedToken: await forgedToken(options.admin),
    targetDeviceId: options.targetDeviceId,
  };
}

/** One TLS client at the gateway: AUTH_ACK, the AUTH_ERROR code, the close reason, or the socket error's code. */
export async function gatewayAnswer(gatewayUrl: string, caPem: string, materials: DeploymentMaterials, device: DeviceMaterial | undefined): Promise<string> {
  const agent = device === undefined ? undefined : new TestAgent(device, { gatewayKey: { kid: materials.gatewaySigner.kid, publicKey: materials.gatewaySigner.publicKey } });
  const ws = new WebSocket(gatewayUrl, { ca: caPem, ...(device === undefined ? {} : { cert: device.certPem, key: device.keyPem }), handshakeTimeout: probeTimeoutMs });
  try {
    return await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), probeTimeoutMs);
      const done = (outcome: string) => { clearTimeout(timer); resolve(outcome); };
      agent?.attach((bytes) => { if (ws.readyState === WebSocket.OPEN) ws.send(bytes); });
      ws.on('message', (data: Buffer) => {
        agent?.onFrame(new Uint8Array(data));
        if (agent?.ready) done('AUTH_ACK');
        const refused = agent?.authError();
        if (refused !== undefined) done(refused);
      });
      ws.on('close', (code, reason) => done(reason.length > 0 ? reason.toString() : `close_${code}`));
      ws.on('error', (error: NodeJS.ErrnoException) => done(error.code === 'ECONNREFUSED' ? 'unreachable' : error.code ?? error.message));
    });
  } finally {
    ws.removeAllListeners('close');
    ws.on('error', () => undefined);
    ws.terminate();
  }
}

async function httpAttempt(apiUrl: string, caPem: string, token: string | undefined, deviceId: string): Promise<string> {
  try {
    const answer = await httpsJson({ method: 'POST', url: new URL('/v1/commands', apiUrl), caPem, ...(token === undefined ? {} : { token }), body: { device_id: deviceId, opcode: probeOpcode, args: {} } });
    return `HTTP_${answer.status}`;
  } catch (error) {
    if (SdcError.is(error, 'HTTP_REFUSED')) return `${String(error.details.status)} ${String(error.details.serverCode)}`;
    return SdcError.is(error) ? error.code : (error as Error).message;
  }
}

/** Every probe once; `phase` says when (during the fault, after the heal). */
export async function runProbes(options: { kit: ProbeKit; gatewayUrl: string; apiUrl: string; caPem: string; materials: DeploymentMaterials; phase: string }): Promise<ProbeOutcome[]> {
  const { kit, gatewayUrl, apiUrl, caPem, materials, phase } = options;
  const tls = async (probe: string, device: DeviceMaterial | undefined, expected: readonly string[]): Promise<ProbeOutcome> => {
    const outcome = await gatewayAnswer(gatewayUrl, caPem, materials, device);
    return { probe, phase, outcome, expected: [...expected, ...unreachable], held: outcome !== 'AUTH_ACK' && (expected.includes(outcome) || outcome === 'unreachable') };
  };
  const http = async (probe: string, token: string | undefined, expected: readonly string[]): Promise<ProbeOutcome> => {
    const outcome = await httpAttempt(apiUrl, caPem, token, kit.targetDeviceId);
    return { probe, phase, outcome, expected, held: expected.includes(outcome) };
  };
  return [
    await tls('tls_no_certificate', undefined, tlsRefused),
    await tls('tls_self_signed', kit.selfSigned, tlsRefused),
    await tls('tls_revoked', kit.revoked, ['TRUST_CERT_REVOKED']),
    await http('http_no_token', undefined, ['401 API_UNAUTHENTICATED']),
    await http('http_malformed_token', 'not-a-jwt', ['401 JWT_MALFORMED']),
    await http('http_forged_token', kit.forgedToken, ['401 JWT_UNKNOWN_KID']),
  ];
}

/** After the run: no probe device ever had a session (presence key), and no command carries the probe opcode. */
export async function probeTraces(deployment: Deployment, kit: ProbeKit): Promise<string[]> {
  const found: string[] = [];
  for (const device of [kit.selfSigned, kit.revoked]) {
    if ((await deployment.stores.kv.get(kvKeys.presence(device.deviceId))) !== null) found.push(`probe device ${device.deviceId} has a presence key (a session was opened)`);
  }
  // The device the probes named: a shared MySQL database holds other runs' commands, this opcode among them.
  const rows = await deployment.stores.sql!.query<{ n: number | string }>('SELECT COUNT(*) AS n FROM commands WHERE opcode = ? AND device_id = ?', [probeOpcode, kit.targetDeviceId]);
  const commands = Number(rows[0]?.n ?? 0);
  if (commands > 0) found.push(`${commands} command(s) with the probe opcode ${probeOpcode} exist for ${kit.targetDeviceId}: an unauthenticated call created one`);
  return found;
}
