import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { agentPaths, parseTrustConfig, type PinnedKey, type TrustConfig } from '../agent/state/agent-state.js';
import { base64urlFromBytes } from '../core/crypto/bytes.js';
import { createNodeEd25519Provider, pemFromPrivateSeed } from '../runtime/ed25519-node.js';
import type { DeviceCsr } from '../trust/device-csr.js';
import { systemClock, systemRandom } from '../runtime/system.js';
import { kvKeys } from '../server/bus-contract/streams.js';
import type { DeploymentMaterials } from '../server/materials/materials.js';
import type { SqlDatabase } from '../server/stores/sql/sql-port.js';
import type { KeyValueStore } from '../server/stores/kv/kv-port.js';
import { normalizeSerialHex } from '../trust/serial-number.js';
import { verifyDeviceCertificate } from '../trust/verify-device-certificate.js';
import { SdcError } from '../core/errors/index.js';
import { forEachBounded } from '../sim/real/concurrency.js';

/**
 * The bench-only fast path for a large fleet (issue 15): pairing and enrollment cost 7-10 ms of
 * the control plane's CPU per device, so 50,000 devices would take the better part of an hour
 * before anything is measured. Here each device gets its key and a certificate signed directly
 * by the deployment's intermediate CA (DeviceCertificateIssuer.issueForCsr, about 0.4 ms of CPU a
 * certificate since it encodes the profile directly; no CSR, since the bench made the key itself
 * and has no possession to prove), its directory written as enrollment writes it, its row in SQL and its admission keys
 * in the key/value store (what TrustPublisher.certificateIssued writes). No pairing token, no
 * enrollment route and no audit entry: the connections are what is measured, not enrollment
 * (`sdc bench roundtrip` and the enrollment test time that path). The fleet is kept in the data
 * directory (`fleet.csv`), so later runs on the same directory reuse it.
 */

export interface BenchDevice {
  readonly deviceId: string;
  readonly dir: string;
  readonly serialHex: string;
  readonly notAfterMs: number;
  readonly publicKey: string;
}

const fleetFile = 'fleet.csv';
const kvConcurrency = 64;
const ed25519 = createNodeEd25519Provider();
/** Every 1,000th certificate is checked as the gateway checks one. */
const verifyEvery = 1_000;

/**
 * What DeviceCertificateIssuer.issueForCsr reads of a parsed CSR (the CN and the request's public
 * key), for a key the bench made itself. Bench only: a real request always goes through
 * parseDeviceCsr, whose self-signature check is the device's proof of possession.
 */
function benchKeyAsCsr(deviceId: string, publicKeyRaw: Uint8Array): DeviceCsr {
  return { commonName: deviceId, publicKeyRaw };
}

const sqlBatchRows = 500;

export function benchDeviceId(index: number): string {
  return `bench-conn-${String(index + 1).padStart(6, '0')}`;
}

function pinned(signer: { kid: string; publicKey: Uint8Array }): PinnedKey {
  return { kid: signer.kid, public_key: base64urlFromBytes(signer.publicKey) };
}

async function readFleet(dataDir: string): Promise<BenchDevice[]> {
  let text: string;
  try {
    text = await readFile(join(dataDir, fleetFile), 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((line) => line.length > 0).map((line) => {
    const [deviceId, serialHex, notAfterMs, publicKey] = line.split(',');
    return { deviceId: deviceId!, dir: join(dataDir, 'agents', deviceId!), serialHex: serialHex!, notAfterMs: Number(notAfterMs), publicKey: publicKey! };
  });
}

/**
 * Step: `count` devices in `dataDir/agents`, made as above where missing (those from an earlier
 * run are kept), with rows in SQL and keys in the key/value store for all of them.
 */
export async function ensureBenchFleet(options: {
  dataDir: string; count: number; materials: DeploymentMaterials; sql: SqlDatabase; kv: KeyValueStore; apiUrl: string;
  /** Written to trust.json; the bench gives each agent its gateways (WorkerAgentSpec.gatewayUrls). */
  gatewayUrl: string; progress: (line: string) => void;
}): Promise<{ devices: BenchDevice[]; issuedNow: number; issueMs: number }> {
  const { materials } = options;
  const known = await readFleet(options.dataDir);
  const devices = known.slice(0, options.count);
  const trustOf = (deviceId: string): TrustConfig => ({
    version: 1, device_id: deviceId, control_plane_url: options.apiUrl, gateway_urls: [options.gatewayUrl],
    ca_pem: materials.rootCaPem, command_keys: [pinned(materials.commandSigner)], gateway_keys: [pinned(materials.gatewaySigner)],
  });
  const chainPem = materials.pki.issuer.chainPems().map((pem) => pem.trimEnd() + '\n').join('');
  const startedMs = systemClock.nowMs();
  const added: BenchDevice[] = [];
  const { issuer } = materials.pki;
  for (let index = devices.length; index < options.count; index++) {
    const deviceId = benchDeviceId(index);
    const dir = join(options.dataDir, 'agents', deviceId);
    const paths = agentPaths(dir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const seed = systemRandom.bytes(32);
    const publicKeyRaw = ed25519.publicKeyFromSeed(seed);
    const issued = await issuer.issueForCsr({ csr: benchKeyAsCsr(deviceId, publicKeyRaw), deviceId, now: new Date(systemClock.nowMs()) });
    if (added.length % verifyEvery === 0) {
      const verified = await verifyDeviceCertificate({
        certPem: issued.certificatePem, trustAnchors: [materials.intermediateCaPem, materials.rootCaPem], now: new Date(systemClock.nowMs()), isRevoked: () => false,
      });
      if (verified.deviceId !== deviceId || normalizeSerialHex(verified.serialHex) !== issued.serialHex) throw new SdcError('BENCH_FAILED', `certificate for ${deviceId} does not read back`);
    }
    // Plain writes, not the agent's fsync'd atomic ones: 200,000 fsyncs would be most of a large run, and a
    // lost bench directory is made again. trust.json last, as enrollment writes it (it marks the directory enrolled).
    await writeFile(paths.deviceKey, pemFromPrivateSeed(seed), { mode: 0o600 });
    await writeFile(paths.deviceCert, issued.certificatePem, { mode: 0o600 });
    await writeFile(paths.chain, chainPem, { mode: 0o600 });
    await writeFile(paths.trust, JSON.stringify(parseTrustConfig(trustOf(deviceId), 'bench trust.json'), null, 2) + '\n', { mode: 0o600 });
    const device = { deviceId, dir, serialHex: issued.serialHex, notAfterMs: issued.notAfter.getTime(), publicKey: base64urlFromBytes(publicKeyRaw) };
    devices.push(device);
    added.push(device);
    if (added.length % 1_000 === 0) options.progress(`issued ${devices.length}/${options.count} device certificates`);
  }
  const issueMs = systemClock.nowMs() - startedMs;
  if (added.length > 0) {
    const lines = [...known, ...added].map((d) => `${d.deviceId},${d.serialHex},${d.notAfterMs},${d.publicKey}\n`).join('');
    await writeFile(join(options.dataDir, fleetFile), lines, { mode: 0o600 });
  }
  await registerDevices(options.sql, devices);
  await forEachBounded(devices, kvConcurrency, async (device) => {
    await options.kv.set(kvKeys.deviceCertificate(device.serialHex), device.deviceId, { ttlMs: device.notAfterMs - systemClock.nowMs() });
    await options.kv.set(kvKeys.device(device.deviceId), device.serialHex);
  });
  options.progress(`fleet of ${devices.length} devices ready (${added.length} issued now)`);
  return { devices, issuedNow: added.length, issueMs };
}

/** Rows as enrollment leaves them (status enrolled, current serial, key); rows already there are left alone. */
async function registerDevices(sql: SqlDatabase, devices: readonly BenchDevice[]): Promise<void> {
  const nowMs = systemClock.nowMs();
  for (let start = 0; start < devices.length; start += sqlBatchRows) {
    const chunk = devices.slice(start, start + sqlBatchRows);
    const rows = await sql.query<{ id: string }>(`SELECT id FROM devices WHERE id IN (${chunk.map(() => '?').join(', ')})`, chunk.map((d) => d.deviceId));
    const present = new Set(rows.map((row) => row.id));
    const missing = chunk.filter((d) => !present.has(d.deviceId));
    if (missing.length === 0) continue;
    await sql.transaction(async (tx) => {
      for (const d of missing) {
        await tx.execute("INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
          [d.deviceId, nowMs, d.serialHex, d.notAfterMs, d.publicKey]);
      }
    });
  }
}
