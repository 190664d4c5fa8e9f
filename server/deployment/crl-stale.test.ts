// A gateway whose CRL is past nextUpdate (decision 0021), on virtual time: fail-closed refuses new
// AUTHs with TRUST_CRL_STALE from nextUpdate + grace on and admits again once a re-signed CRL is
// taken; fail-open admits and says so (an error line per reload, sdc_gateway_crl_state). The watch
// is reloaded by the test (its own scheduler never runs), so no file read races virtual time.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { createCrl } from '../../trust/crl.js';
import { makeTestPki, type TestPki } from '../../trust/test-fixtures.js';
import { ServiceMetrics } from '../observability/metrics.js';
import { createRevocationCheck } from '../gateway/revocation-check.js';
import { connectInMemory, embeddedStores, makeCore, makeGatewayPki, onVirtualTime, TestAgent, VirtualDriver, type GatewayPki } from '../gateway/test-support.js';
import { CrlFileWatch, crlFreshAdmission, crlMetricsCollector, type CrlStalePolicy } from './crl-file-watch.js';

const validityMs = 120_000;
const graceMs = 30_000;

describe('a gateway whose CRL is past its nextUpdate', () => {
  let crlPki: TestPki;
  let gpki: GatewayPki;
  let dir: string;
  before(async () => {
    crlPki = await makeTestPki(new Date(Date.UTC(2026, 0, 1)));
    gpki = await makeGatewayPki();
    dir = await mkdtemp(join(tmpdir(), 'sdc-crl-stale-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** A gateway on virtual time whose admission runs through a CRL watch with `policy`; its error log lines and metrics. */
  async function world(policy: CrlStalePolicy) {
    const driver = new VirtualDriver();
    const path = join(dir, `crl-${policy}.pem`);
    const lines: Array<{ code?: string; msg: string }> = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => { lines.push(JSON.parse(line) as { code?: string; msg: string }); } });
    const watch = new CrlFileWatch({
      path, intermediateCaPem: crlPki.intermediate.certificate.toString('pem'), scheduler: new VirtualTime(), clock: driver.time, logger, staleGraceMs: graceMs,
    });
    const metrics = new ServiceMetrics();
    metrics.addCollector(crlMetricsCollector(watch, metrics));
    const stores = embeddedStores(driver.time);
    const core = makeCore(stores, {
      ...onVirtualTime(driver), heartbeatIntervalMs: 3_600_000, metrics,
      isRevoked: createRevocationCheck({ kv: stores.kv, crlSerials: () => watch.serials() }),
      checkEnrollment: crlFreshAdmission({ watch, policy, next: () => undefined }),
    });
    await core.start();
    const sign = async (crlNumber: bigint) => {
      const crl = await createCrl({ issuer: crlPki.intermediate, entries: [], crlNumber, now: new Date(driver.time.nowMs()), nextUpdateMs: validityMs });
      await writeFile(path, crl.pem);
      await watch.reload();
      return crl.nextUpdate.getTime();
    };
    /** AUTH_ACK (undefined) or the AUTH_ERROR code, for a new device connecting now. */
    const connect = async (deviceId: string): Promise<{ agent: TestAgent; refused: string | undefined }> => {
      const device = await gpki.issueDevice(deviceId);
      const agent = connectInMemory(core, device, new TestAgent(device, { clock: driver.time }));
      await driver.until(() => (agent.ready || agent.authError() !== undefined ? true : undefined), 1_000, `${deviceId} answered`);
      return { agent, refused: agent.authError() };
    };
    const stop = async () => {
      await core.stop();
      await Promise.all([stores.bus.close(), stores.kv.close()]);
    };
    return { driver, watch, metrics, lines, sign, connect, stop };
  }

  it('fail-closed: refuses new AUTHs with TRUST_CRL_STALE past nextUpdate + grace, keeps open sessions, admits again once a re-signed CRL is taken', async () => {
    const w = await world('fail-closed');
    try {
      assert.equal((await w.connect('dev-before')).refused, 'TRUST_CRL_STALE', 'no CRL held yet: fail-closed admits nobody');
      const nextUpdateMs = await w.sign(1n);
      const first = await w.connect('dev-1');
      assert.equal(first.refused, undefined);
      await w.driver.runTo(nextUpdateMs + graceMs);
      assert.equal((await w.connect('dev-2')).refused, undefined, 'within the grace');
      await w.driver.runTo(nextUpdateMs + graceMs + 1);
      assert.equal((await w.connect('dev-3')).refused, 'TRUST_CRL_STALE');
      assert.equal(first.agent.closed, undefined, 'a session admitted before is not closed for it');
      assert.match(await w.metrics.text(), /sdc_websocket_errors_total\{code="TRUST_CRL_STALE"\} 2/);
      await w.watch.reload();
      assert.ok(w.lines.some((line) => line.code === 'TRUST_CRL_STALE'), 'the reload logs the stale CRL');
      await w.sign(2n);
      assert.equal((await w.connect('dev-4')).refused, undefined, 'a re-signed CRL taken: admitted again');
    } finally {
      await w.stop();
    }
  });

  it('fail-open: keeps admitting past nextUpdate + grace, with an error line per reload and sdc_gateway_crl_state stale', async () => {
    const w = await world('fail-open');
    try {
      const nextUpdateMs = await w.sign(5n);
      assert.match(await w.metrics.text(), /sdc_gateway_crl_state\{state="fresh"\} 1/);
      assert.match(await w.metrics.text(), /sdc_gateway_crl_number 5/);
      assert.match(await w.metrics.text(), new RegExp(`sdc_gateway_crl_next_update_timestamp_seconds ${nextUpdateMs / 1000}`));
      await w.driver.runTo(nextUpdateMs + graceMs + 1);
      assert.equal(w.lines.filter((line) => line.code === 'TRUST_CRL_STALE').length, 0);
      await w.watch.reload();
      await w.watch.reload();
      assert.equal(w.lines.filter((line) => line.code === 'TRUST_CRL_STALE').length, 2, 'one error line per reload');
      assert.equal((await w.connect('dev-open')).refused, undefined);
      const text = await w.metrics.text();
      assert.match(text, /sdc_gateway_crl_state\{state="stale"\} 1/);
      assert.match(text, /sdc_gateway_crl_state\{state="fresh"\} 0/);
    } finally {
      await w.stop();
    }
  });
});
