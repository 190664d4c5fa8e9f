// The AUTH negotiation of OTA_NOTICE's signed `notice_state` (core/ota/notice-state.ts): the
// gateway passes the member on only to an agent that announced `ota_notice_state` in AUTH; an
// older agent, whose schema refuses unknown members, gets the notice it knows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createNobleEd25519Provider } from '../../crypto/ed25519-noble.js';
import { SeededRandom } from '../../random/prng.js';
import { exampleBodies } from '../messages/examples.js';
import { AgentConnection } from './agent-connection.js';
import { GatewayConnection, deviceKid, gatewayKid } from './gateway-connection.js';
import { pumpFrames } from './test-support.js';

const provider = createNobleEd25519Provider();
const deviceSeed = new Uint8Array(randomBytes(32));
const gatewaySeed = new Uint8Array(randomBytes(32));
const t0 = 1_764_000_000_000;

function noticeDeliveredTo(otaNoticeState: boolean | undefined): { notice: Record<string, unknown> } {
  const gateway = new GatewayConnection({
    gatewayId: 'gw-1', sessionId: 'sess_1', deviceId: 'dev-1', devicePublicKey: provider.publicKeyFromSeed(deviceSeed),
    signer: { kid: gatewayKid('gw-1'), seed: gatewaySeed, provider }, random: new SeededRandom(20261205),
    heartbeatIntervalMs: 10_000, authTimeoutMs: 5_000, sessionToken: 'token-1',
  });
  const agent = new AgentConnection({
    deviceId: 'dev-1', signer: { kid: deviceKid('dev-1'), seed: deviceSeed, provider },
    resolveGatewayKey: (kid) => (kid === gatewayKid('gw-1') ? provider.publicKeyFromSeed(gatewaySeed) : undefined),
    agentVersion: '0.1.0', lastCommandSeq: 0, ...(otaNoticeState === undefined ? {} : { otaNoticeState }),
  });
  gateway.start(t0);
  pumpFrames(gateway, agent, t0);
  assert.equal(gateway.state, 'ready');
  gateway.sendOtaNotice(exampleBodies.OTA_NOTICE, t0 + 1);
  const { agentEvents } = pumpFrames(gateway, agent, t0 + 1);
  const delivered = agentEvents.find((e) => e.kind === 'message');
  assert.ok(delivered?.kind === 'message' && delivered.message.type === 'OTA_NOTICE', JSON.stringify(agentEvents));
  return { notice: delivered.message.body as Record<string, unknown> };
}

test('OTA_NOTICE carries notice_state only to an agent that announced ota_notice_state in AUTH', () => {
  assert.ok(exampleBodies.OTA_NOTICE.notice_state !== undefined);
  const announced = noticeDeliveredTo(true);
  assert.deepEqual(announced.notice['notice_state'], exampleBodies.OTA_NOTICE.notice_state);
  for (const off of [undefined, false]) {
    const older = noticeDeliveredTo(off);
    assert.equal('notice_state' in older.notice, false, `otaNoticeState ${String(off)}`);
    assert.equal(older.notice['cancel'], exampleBodies.OTA_NOTICE.cancel, 'the rest of the notice as before');
  }
});
