import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import { systemRandom } from '../../runtime/system.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { ensureEnrolled, renewalDue } from '../../agent/enrollment.js';
import { agentPaths } from '../../agent/state/agent-state.js';

// Against the real control plane over HTTPS (TLS 1.3), trusting only the deployment's root CA.
describe('agent enrollment (real control plane over HTTPS)', () => {
  let harness: Harness;
  let serverUrl: string;
  let dir: string;
  before(async () => {
    harness = await makeHarness(sqlJsTarget);
    serverUrl = (await harness.cp.listen({ host: '127.0.0.1', port: 0, tls: true })).url;
    dir = await mkdtemp(join(tmpdir(), 'sdc-agent-'));
  });
  after(async () => {
    await harness.close();
    await rm(dir, { recursive: true, force: true });
  });

  const isCode = (code: string) => (e: unknown) => SdcError.is(e) && e.code === code;

  it('refuses to start with neither an enrollment nor a token', async () => {
    await assert.rejects(ensureEnrolled({ dir: join(dir, 'empty'), serverUrl, random: systemRandom, clock: harness.clock }), isCode('AGENT_NOT_ENROLLED'));
  });

  it('enrolls with a pairing token, stores key, chain and pinned keys, and reuses them later', async () => {
    const agentDir = join(dir, 'a1');
    const { token } = await harness.cp.devices.createPairingToken({ actor: 'admin', deviceId: 'dev-enroll-1' });
    const caPem = harness.materials.rootCaPem;
    const first = await ensureEnrolled({ dir: agentDir, serverUrl, deviceId: 'dev-enroll-1', pairingToken: token, caPem, random: systemRandom, clock: harness.clock });
    assert.equal(first.enrolledNow, true);
    const { identity } = first;
    assert.equal(identity.deviceId, 'dev-enroll-1');
    assert.equal(identity.trust.command_keys[0]?.kid, harness.materials.commandSigner.kid);
    assert.equal(identity.trust.gateway_keys[0]?.kid, harness.materials.gatewaySigner.kid);
    assert.deepEqual(identity.trust.gateway_urls, ['wss://127.0.0.1:9443/v1/agent']);
    assert.equal(identity.trust.ca_pem, caPem);
    assert.equal(parseCertificate(identity.certPem).subject, 'CN=dev-enroll-1');
    const paths = agentPaths(agentDir);
    assert.equal((await stat(paths.deviceKey)).mode & 0o777, 0o600);
    assert.equal((await stat(agentDir)).mode & 0o777, 0o700);
    assert.equal((await harness.cp.devices.get('dev-enroll-1')).status, 'enrolled');
    assert.equal(renewalDue(identity.certPem, harness.clock.nowMs()), false);

    // A second run: no token needed, same key, nothing sent.
    const second = await ensureEnrolled({ dir: agentDir, random: systemRandom, clock: harness.clock });
    assert.equal(second.enrolledNow, false);
    assert.deepEqual(second.identity.seed, identity.seed);
    await assert.rejects(ensureEnrolled({ dir: agentDir, deviceId: 'other', random: systemRandom, clock: harness.clock }), isCode('AGENT_STATE_INVALID'));
  });

  it('a used token is refused with the control plane code, and nothing is marked enrolled', async () => {
    const { token } = await harness.cp.devices.createPairingToken({ actor: 'admin', deviceId: 'dev-enroll-2' });
    const caPem = harness.materials.rootCaPem;
    await ensureEnrolled({ dir: join(dir, 'a2'), serverUrl, deviceId: 'dev-enroll-2', pairingToken: token, caPem, random: systemRandom, clock: harness.clock });
    await assert.rejects(
      ensureEnrolled({ dir: join(dir, 'a3'), serverUrl, deviceId: 'dev-enroll-2', pairingToken: token, caPem, random: systemRandom, clock: harness.clock }),
      (e: unknown) => isCode('AGENT_ENROLL_FAILED')(e) && /TRUST_PAIRING_TOKEN_USED/.test((e as Error).message),
    );
    await assert.rejects(stat(agentPaths(join(dir, 'a3')).trust));
  });

  it('renewal is due once less than a third of the validity is left', async () => {
    const { identity } = await ensureEnrolled({ dir: join(dir, 'a1'), random: systemRandom, clock: harness.clock });
    const cert = parseCertificate(identity.certPem);
    const span = cert.notAfter.getTime() - cert.notBefore.getTime();
    assert.equal(renewalDue(identity.certPem, cert.notAfter.getTime() - span / 3 + 1_000), true);
    assert.equal(renewalDue(identity.certPem, cert.notAfter.getTime() - span / 3 - 1_000), false);
  });
});
