// A device client the tests drive by hand over a real TLS WebSocket: the sans-IO AgentConnection
// for the AUTH handshake and well-formed frames, plus raw writes for frames a real agent never
// sends (malformed, oversized, re-signed, replayed).
import WebSocket from 'ws';
import { createNodeEd25519Provider } from '../../../runtime/ed25519-node.js';
import type { DeploymentMaterials } from '../../../server/materials/materials.js';
import { AgentConnection, type AgentEvent } from '../../../core/protocol/session/agent-connection.js';
import { deviceKid } from '../../../core/protocol/session/gateway-connection.js';
import { systemClock, systemRandom } from '../../../runtime/system.js';
import { exportPkcs8Der, generateEd25519KeyPair } from '../../../trust/ed25519-keys.js';
import { toPem } from '../../../trust/pem.js';
import { ed25519Algorithm, x509 } from '../../../trust/x509-provider.js';
import { eventually } from './e2e-harness.js';

export const provider = createNodeEd25519Provider();

export interface DeviceCredentials {
  deviceId: string;
  /** Device certificate followed by its chain. */
  certPem: string;
  keyPem: string;
  seed: Uint8Array;
}

export class RawDevice {
  readonly events: AgentEvent[] = [];
  /** Every frame as it arrived, parsed. */
  readonly frames: Array<{ type: string; body: Record<string, unknown> }> = [];
  closed: { code: number; reason: string } | undefined;
  readonly connection: AgentConnection;
  #heartbeatTimer: NodeJS.Timeout | undefined;

  private constructor(readonly credentials: DeviceCredentials, readonly ws: WebSocket, materials: DeploymentMaterials) {
    this.connection = new AgentConnection({
      deviceId: credentials.deviceId, signer: { kid: deviceKid(credentials.deviceId), seed: credentials.seed, provider },
      resolveGatewayKey: (kid) => (kid === materials.gatewaySigner.kid ? materials.gatewaySigner.publicKey : undefined),
      agentVersion: 'e2e-raw', lastCommandSeq: 0,
    });
  }

  /** Opens the TLS WebSocket with the device certificate; AUTH runs as frames arrive. */
  static async connect(url: string, credentials: DeviceCredentials, materials: DeploymentMaterials): Promise<RawDevice> {
    const ws = new WebSocket(url, { cert: credentials.certPem, key: credentials.keyPem, ca: materials.rootCaPem, minVersion: 'TLSv1.3', perMessageDeflate: false });
    const device = new RawDevice(credentials, ws, materials);
    ws.on('message', (data: Buffer) => device.#onFrame(new Uint8Array(data)));
    ws.on('close', (code, reason) => {
      device.closed = { code, reason: reason.toString() };
      clearInterval(device.#heartbeatTimer);
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.on('error', () => undefined);
    return device;
  }

  #onFrame(bytes: Uint8Array): void {
    try {
      const parsed = JSON.parse(Buffer.from(bytes).toString('utf8')) as { type: string; body: Record<string, unknown> };
      this.frames.push({ type: parsed.type, body: parsed.body });
    } catch {
      this.frames.push({ type: 'UNPARSEABLE', body: {} });
    }
    const events = this.connection.receive(bytes, systemClock.nowMs());
    this.events.push(...events);
    this.flush();
    const ready = events.find((e) => e.kind === 'ready');
    // Heartbeats as a real agent sends them, or the gateway would close the silent session.
    if (ready?.kind === 'ready' && this.#heartbeatTimer === undefined) {
      this.#heartbeatTimer = setInterval(() => {
        if (this.connection.state === 'ready') this.sendRaw(this.heartbeatFrame());
      }, Math.max(100, Math.floor(ready.heartbeatIntervalMs / 3)));
    }
  }

  flush(): void {
    for (const frame of this.connection.takeOutgoing()) this.sendRaw(frame);
  }

  sendRaw(bytes: Uint8Array | string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes);
  }

  get ready(): boolean {
    return this.events.some((e) => e.kind === 'ready');
  }

  async waitReady(): Promise<void> {
    await eventually(`${this.credentials.deviceId} session ready`, () => (this.ready ? true : undefined), 10_000, 20);
  }

  /** The AUTH_ERROR code, once it arrived. */
  async authError(): Promise<string> {
    return eventually(`AUTH_ERROR for ${this.credentials.deviceId}`, () => {
      const event = this.events.find((e) => e.kind === 'auth_error');
      return event?.kind === 'auth_error' ? event.code : undefined;
    }, 10_000, 20);
  }

  errorCodes(): string[] {
    return this.frames.flatMap((f) => (f.type === 'ERROR' ? [String(f.body.code)] : []));
  }

  /** Waits for the count of ERROR frames to reach `count`; returns the newest code. */
  async nextErrorCode(count: number): Promise<string> {
    return eventually(`ERROR frame #${count}`, () => {
      const codes = this.errorCodes();
      return codes.length >= count ? codes[count - 1] : undefined;
    }, 10_000, 20);
  }

  /** A well-formed, signed HEARTBEAT of this session, not yet sent: for replays and tampering. */
  heartbeatFrame(): Uint8Array {
    this.connection.sendHeartbeat({ uptime_ms: 1000, queue_depth: 0 }, systemClock.nowMs());
    const frames = this.connection.takeOutgoing();
    if (frames.length !== 1) throw new Error(`expected one frame, got ${frames.length}`);
    return frames[0]!;
  }

  close(): void {
    clearInterval(this.#heartbeatTimer);
    this.ws.terminate();
  }
}

/**
 * A certificate from the deployment's own intermediate for a device the control plane never
 * enrolled: what a leaked issuing key or an operator's mistake would produce.
 */
export async function issueUnenrolledDevice(materials: DeploymentMaterials, deviceId: string): Promise<DeviceCredentials> {
  const keys = await generateEd25519KeyPair(systemRandom);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: [{ '2.5.4.3': [deviceId] }], keys, signingAlgorithm: ed25519Algorithm });
  const issued = await materials.pki.issuer.issueDeviceCertificate({ csrPem: csr.toString('pem'), deviceId, now: new Date(systemClock.nowMs()) });
  const pkcs8 = await exportPkcs8Der(keys.privateKey);
  return {
    deviceId, certPem: `${issued.certificatePem.trim()}\n${materials.intermediateCaPem.trim()}\n`, keyPem: toPem('PRIVATE KEY', pkcs8),
    seed: pkcs8.slice(pkcs8.length - 32),
  };
}
