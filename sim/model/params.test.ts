import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { commandLimits, redispatchIntervalMaxMsDefault, redispatchIntervalMsDefault } from '../../server/control-plane/commands.js';
import { resolveGatewayOptions } from '../../server/gateway/gateway-core.js';
import { presenceTtlMs } from '../../server/gateway/presence.js';
import { aliveTtlMs } from '../../server/gateway/peer-watch.js';
import { agentCoreLimits } from '../../agent/agent-core.js';
import { defaultModelParams } from './params.js';

// The model copies the real code's timers and bounds; this pins the ones the real code exports, so a change there fails here.
describe('model parameters', () => {
  it('are the gateway defaults of resolveGatewayOptions', () => {
    const stub = {} as never;
    const gateway = resolveGatewayOptions({ gatewayId: 'gw-1', signer: stub, provider: stub, stores: { bus: stub, kv: stub }, clock: stub, random: stub, scheduler: stub, commandKeys: new Map() });
    const p = defaultModelParams;
    assert.equal(p.gatewayAuthTimeoutMs, gateway.authTimeoutMs);
    assert.equal(p.ackTimeoutMs, gateway.ackTimeoutMs);
    assert.equal(p.deliveryAttemptsMax, gateway.deliveryAttemptsMax);
    assert.equal(p.reportAttemptsMax, gateway.reportAttemptsMax);
    assert.deepEqual(p.backoff, gateway.backoff);
    assert.equal(p.pendingDeliveriesPerDeviceMax, gateway.pendingDeliveriesPerDeviceMax);
    assert.equal(p.refusalsMax, gateway.refusalsMax);
    assert.equal(gateway.aliveRefreshIntervalMs, gateway.heartbeatIntervalMs, 'peer reclaim is counted in heartbeat intervals');
    assert.equal(aliveTtlMs(1_000), p.peerReclaimIntervals * 1_000);
  });

  it('are the control plane defaults and the presence bound', () => {
    const p = defaultModelParams;
    assert.equal(p.redispatchIntervalMs, redispatchIntervalMsDefault);
    assert.equal(p.redispatchIntervalMaxMs, redispatchIntervalMaxMsDefault);
    assert.equal(p.redispatchPerSweepMax, commandLimits.redispatchPerSweepMax);
    assert.equal(p.expirePerSweepMax, commandLimits.expirePerSweepMax);
    assert.equal(p.redeliverPerPresenceMax, commandLimits.redeliverPerPresenceMax);
    for (const heartbeatMs of [1_000, 10_000, 30_000]) assert.equal(presenceTtlMs(heartbeatMs), Math.ceil(heartbeatMs * p.gatewaySilenceIntervals));
  });

  it('cost no virtual time by default, as every service does in the full tier', () => {
    assert.equal(defaultModelParams.reportServiceMs, 0);
    assert.equal(defaultModelParams.dispatchServiceMs, 0);
    assert.equal(defaultModelParams.executionServiceMs, 0);
    assert.equal(defaultModelParams.telemetryFrameServiceMs, 0);
  });

  it('are the agent core\'s telemetry bounds: its buffer and its batch delay', () => {
    assert.equal(defaultModelParams.telemetryBufferMax, agentCoreLimits.telemetryBufferMax);
    assert.equal(defaultModelParams.telemetryBatchDelayMs, agentCoreLimits.telemetryBatchDelayMs);
  });
});
