// Hardening 10.4 (issue 12): JWT signing keys rotate on schedule with overlap, also across a
// control-plane restart, and the CRL is re-published at every revocation and on a schedule.
// Everything runs on virtual time: the control plane's timers fire only when the test moves time.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { SdcError } from '../../core/errors/index.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { systemRandom } from '../../runtime/system.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { x509 } from '../../trust/x509-provider.js';
import { pkiPaths } from '../../trust/pki-directory.js';
import { initDeployment, type DeploymentMaterials } from '../materials/materials.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { createEmbeddedKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { createControlPlane, type ControlPlane } from './control-plane.js';
import { makeDeviceKey, sqlJsTarget } from './test-support.js';

const minuteMs = 60_000;
const tokenTtlMsMax = 10 * minuteMs;
/** JwtAuthority keeps a retired key published this long: the longest token plus the verifiers' default skew (30 s). */
const overlapMs = tokenTtlMsMax + 30_000;
const rotationIntervalMs = 30 * minuteMs;
const consumerBlockMs = minuteMs;
/**
 * A CRL valid one hour, re-signed with 20 min left: the re-sign is 40 virtual minutes away, not
 * 16 hours (1,920 steps of 30 s, each waiting on the sweeps' real work, made this file 30 s long).
 */
const crlValidityMs = 60 * minuteMs;
const password = 'correct horse battery staple';

/**
 * A timer's pass (SQL, signing, a file write) finishes in real time after virtual time moved on:
 * what it leaves is awaited here, with a generous real-time limit (virtual time stands still): on a
 * machine busy with other work (four spinning processes beside npm test) 30 s was not enough.
 */
async function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 180_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

/** Lets the work a fired timer started (SQL, file writes) finish before time moves on. */
async function settleRealWork(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
  await delay(2);
}

class World {
  readonly time = new VirtualTime(Date.now());
  dir = '';
  materials!: DeploymentMaterials;
  db!: SqlDatabase;
  bus!: MemoryStreamBus;
  kv!: KeyValueStore;
  /** The control plane running now: time moves on only when its sweeps' passes have finished. */
  #running: ControlPlane | undefined;

  async open(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'sdc-trust-schedule-'));
    this.materials = await initDeployment({ dataDir: this.dir, clock: this.time, random: systemRandom });
    this.db = await sqlJsTarget.open(this.dir);
    this.bus = new MemoryStreamBus({ clock: this.time, scheduler: this.time });
    this.kv = createEmbeddedKeyValueStore({ keyPrefix: `trust-schedule-${randomBytes(4).toString('hex')}:` });
  }

  get crlPath(): string {
    return pkiPaths(this.dir).crlPath;
  }

  /** A control plane on this data directory and database; the JWT key ring persists in `<dir>/jwt/`. */
  async controlPlane(overrides: { crlValidityMs?: number } = {}): Promise<ControlPlane> {
    const cp = await createControlPlane({
      materials: this.materials, stores: { sql: this.db, bus: this.bus, kv: this.kv }, clock: this.time, random: systemRandom, scheduler: this.time,
      gatewayUrls: ['wss://127.0.0.1:9443/v1/agent'], scryptParams: { N: 1024, r: 8, p: 1 }, crlPath: this.crlPath,
      jwt: { rotationIntervalMs, tokenTtlMs: tokenTtlMsMax, tokenTtlMsMax }, jwtRotationCheckIntervalMs: minuteMs, crlRepublishIntervalMs: minuteMs, crlValidityMs,
      // The other sweeps rarely: they play no part here.
      consumerBlockMs, auditDrainIntervalMs: 10 * minuteMs, expirySweepIntervalMs: 10 * minuteMs, redeliverySweepIntervalMs: 10 * minuteMs,
      enrolledDevicesPublishIntervalMs: 10 * minuteMs, trustWipeCheckIntervalMs: 10 * minuteMs,
      complianceSweepIntervalMs: 10 * minuteMs, policyRevisionCheckIntervalMs: 10 * minuteMs,
      ...overrides,
    });
    await cp.start();
    this.#running = cp;
    return cp;
  }

  /** Stops a control plane: its consumers' blocking reads end when virtual time reaches their timeout. */
  async stop(cp: ControlPlane): Promise<void> {
    const stopped = cp.stop();
    await this.runTo(this.time.nowMs() + consumerBlockMs + 1);
    await stopped;
    this.#running = undefined;
  }

  /**
   * Moves virtual time to `untilMs` in steps of at most 30 s. After each fired timer, the pass it
   * started runs to its end before time moves on (sweepsSettled): otherwise, on a busy machine, a
   * pass ends some virtual seconds late, and the test's "within one interval" would hang on timing.
   */
  async runTo(untilMs: number): Promise<void> {
    const settle = async (): Promise<void> => {
      await settleRealWork();
      await this.#running?.sweepsSettled();
    };
    while (this.time.nowMs() < untilMs) {
      await this.time.runUntil(Math.min(untilMs, this.time.nowMs() + 30_000), settle);
      await settle();
    }
  }

  async close(): Promise<void> {
    await this.bus.close();
    await this.kv.close();
    await this.db.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** What the tests read from a CRL file: its number (extension 2.5.29.20, a DER INTEGER), times and serials. */
function parseCrl(pem: string): { crlNumber: bigint; thisUpdate: Date; nextUpdate: Date; serials: string[] } {
  const crl = new x509.X509Crl(pem);
  const der = new Uint8Array(crl.getExtension('2.5.29.20')!.value);
  assert.equal(der[0], 0x02, 'CRL number is an INTEGER');
  const crlNumber = BigInt(`0x${Buffer.from(der.subarray(2, 2 + der[1]!)).toString('hex')}`);
  return { crlNumber, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate!, serials: crl.entries.map((e) => normalizeSerialHex(e.serialNumber)).sort() };
}

const kidOf = (token: string): string => (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as { kid: string }).kid;
const publishedKids = (cp: ControlPlane): string[] => cp.auth.authority.jwks().keys.map((key) => key.kid);

describe('JWT signing keys rotate on schedule with overlap, across a restart (virtual time)', () => {
  const world = new World();
  before(() => world.open());
  after(() => world.close());

  it('rotates with no login, keeps verifying a token of the retired key after a restart until its exp, and drops the key after the overlap', async () => {
    const t0 = world.time.nowMs();
    let cp = await world.controlPlane();
    await cp.auth.users.add({ name: 'root', role: 'admin', password, nowMs: t0 });
    const firstKid = cp.auth.authority.activeKid;
    // A token signed shortly before the rotation falls due: it outlives its key's time as the active one.
    await world.runTo(t0 + rotationIntervalMs - 2 * minuteMs);
    const { token } = await cp.auth.login('root', password);
    assert.equal(kidOf(token), firstKid);

    // On schedule: no token is issued, yet the key ring rotates within one check interval of the due time.
    await world.runTo(t0 + rotationIntervalMs + minuteMs + 1);
    const secondKid = await eventually('the scheduled rotation', () => (cp.auth.authority.activeKid !== firstKid ? cp.auth.authority.activeKid : undefined));
    assert.deepEqual(publishedKids(cp).sort(), [firstKid, secondKid].sort(), 'the retired key stays published during the overlap');

    // The restart: a new control plane on the same data directory and database.
    await world.stop(cp);
    cp = await world.controlPlane();
    assert.equal(cp.auth.authority.activeKid, secondKid, 'the ring was persisted: no new key at restart');
    assert.equal((await cp.auth.verify(token)).name, 'root', 'a token of the retired key verifies after the restart, within the overlap');
    const after = await cp.auth.login('root', password);
    assert.equal(kidOf(after.token), secondKid);

    // Past the token's exp it is refused as expired; past the overlap the retired key is no longer published.
    const retiredAtMs = t0 + rotationIntervalMs; // within one check interval after this
    await world.runTo(retiredAtMs + minuteMs + overlapMs + minuteMs + 1);
    await assert.rejects(cp.auth.verify(token), (error: unknown) => SdcError.is(error) && error.code.startsWith('JWT_'));
    await eventually('the retired key dropped after the overlap', () => (publishedKids(cp).length === 1 ? true : undefined));
    assert.deepEqual(publishedKids(cp), [secondKid]);
    const fresh = await cp.auth.login('root', password);
    assert.equal(kidOf(fresh.token), secondKid);
    assert.equal((await cp.auth.verify(fresh.token)).name, 'root');
    await world.stop(cp);
  });
});

describe('the CRL is re-published at every revocation and on a schedule (virtual time)', () => {
  const world = new World();
  before(() => world.open());
  after(() => world.close());

  const crlOnDisk = async () => parseCrl(await readFile(world.crlPath, 'utf8'));

  it('writes a CRL listing the serial as soon as revoke returns, rewrites a lost file within one interval, and re-signs before it goes stale', async () => {
    const cp = await world.controlPlane();
    try {
      const first = await crlOnDisk();
      assert.deepEqual(first.serials, [], 'written at start');
      assert.equal(first.nextUpdate.getTime() - first.thisUpdate.getTime(), crlValidityMs, 'the configured validity');
      const device = 'crl-dev-1';
      const key = await makeDeviceKey(device);
      const { token } = await cp.devices.createPairingToken({ actor: 'root', deviceId: device });
      await cp.devices.enroll({ deviceId: device, token, csrPem: key.csrPem });
      const revoked = await cp.devices.revoke({ actor: 'root', deviceId: device, reason: 'keyCompromise' });
      // At the revocation, without any timer: the file names the serial, under the revocation's CRL number.
      const atRevocation = await crlOnDisk();
      assert.deepEqual(atRevocation.serials, [normalizeSerialHex(revoked.serial)]);
      assert.equal(atRevocation.crlNumber.toString(), revoked.crl_number);

      // The file is lost (deleted by hand, a failed write): the schedule writes it again within one interval.
      await unlink(world.crlPath);
      await world.runTo(world.time.nowMs() + minuteMs + 1);
      const healed = await eventually('the CRL file written again', () => crlOnDisk().catch(() => undefined));
      assert.equal(healed.crlNumber, atRevocation.crlNumber, 'the same CRL, re-published');

      // Before a third of its validity is left it is re-signed on schedule: a higher number, a later thisUpdate, the serial still listed.
      const resignDueMs = atRevocation.thisUpdate.getTime() + ((atRevocation.nextUpdate.getTime() - atRevocation.thisUpdate.getTime()) * 2) / 3;
      await world.runTo(resignDueMs + minuteMs + 1);
      const resigned = await eventually('the CRL re-signed', async () => {
        const crl = await crlOnDisk().catch(() => undefined);
        return crl !== undefined && crl.crlNumber > atRevocation.crlNumber ? crl : undefined;
      });
      assert.ok(resigned.crlNumber > atRevocation.crlNumber, `number ${resigned.crlNumber} after ${atRevocation.crlNumber}`);
      assert.ok(resigned.thisUpdate.getTime() > atRevocation.thisUpdate.getTime());
      assert.deepEqual(resigned.serials, atRevocation.serials);
      assert.ok(resigned.nextUpdate.getTime() > world.time.nowMs(), 'never stale');
    } finally {
      await world.stop(cp);
    }
  });

  it('refuses a CRL validity of three republish intervals or less: the re-sign could come only after it went stale', async () => {
    await assert.rejects(world.controlPlane({ crlValidityMs: 3 * minuteMs }), (error: unknown) => error instanceof SdcError && error.code === 'TRUST_INVALID_ARGUMENT');
  });
});
