// Issue 12, 11.1: the agents' reported queue depth and uptime (HEARTBEAT's queue_depth and
// uptime_ms) on a gateway's /metrics, and the OTA executions counter hook. The gateway runs on
// virtual time with real sessions in memory; its registry's exposition text is parsed as a
// scraper would.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GatewayCore } from '../gateway/gateway-core.js';
import {
  connectInMemory, embeddedStores, makeCore, makeGatewayPki, onVirtualTime, settle, TestAgent, VirtualDriver, type GatewayPki, type TestStores,
} from '../gateway/test-support.js';
import { findSample, parseExposition, type ExpositionSample } from './exposition.js';
import { ServiceMetrics } from './metrics.js';

describe('agent reports on /metrics (queue depth, uptime)', () => {
  const driver = new VirtualDriver();
  const heartbeatIntervalMs = 1_000;
  let gpki: GatewayPki;
  let stores: TestStores;
  let core: GatewayCore;
  const collectorErrors: unknown[] = [];
  const metrics = new ServiceMetrics({ onCollectorError: (error) => collectorErrors.push(error) });

  before(async () => {
    gpki = await makeGatewayPki();
    stores = embeddedStores(driver.time);
    core = makeCore(stores, { ...onVirtualTime(driver), heartbeatIntervalMs, ackTimeoutMs: 60_000, metrics });
    await core.start();
  });

  after(async () => {
    metrics.stop();
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  const scrape = async (): Promise<ExpositionSample[]> => {
    const samples = parseExposition(await metrics.text());
    assert.deepEqual(collectorErrors, []);
    return samples;
  };
  const value = (samples: ExpositionSample[], name: string, labels: Record<string, string> = {}): number | undefined => findSample(samples, name, labels)?.value;

  async function connect(deviceId: string): Promise<TestAgent> {
    const device = await gpki.issueDevice(deviceId);
    const agent = connectInMemory(core, device, new TestAgent(device, { clock: driver.time }));
    await driver.until(() => (agent.ready ? true : undefined), 2_000, `${deviceId} AUTH_ACK`);
    return agent;
  }

  const heartbeat = async (agent: TestAgent, body: { uptime_ms: number; queue_depth: number }): Promise<void> => {
    agent.connection.sendHeartbeat(body, driver.time.nowMs());
    agent.flush();
    await settle();
  };

  it('sums and maxes the reported queue depths, gives uptime min/median/max aged to the scrape, and forgets a session that ended', async () => {
    const before = await scrape();
    assert.equal(value(before, 'sdc_agents_reporting'), 0);
    assert.equal(value(before, 'sdc_agent_queue_depth', { stat: 'sum' }), 0);

    const a = await connect('dev-report-a');
    const b = await connect('dev-report-b');
    const c = await connect('dev-report-c');
    await heartbeat(a, { uptime_ms: 5_000, queue_depth: 3 });
    await heartbeat(b, { uptime_ms: 60_000, queue_depth: 0 });
    await heartbeat(c, { uptime_ms: 3_600_000, queue_depth: 11 });
    // Uptimes are aged by the time since each heartbeat was heard.
    await driver.advance(200);
    const samples = await scrape();
    assert.equal(value(samples, 'sdc_agents_reporting'), 3);
    assert.equal(value(samples, 'sdc_agent_queue_depth', { stat: 'sum' }), 14);
    assert.equal(value(samples, 'sdc_agent_queue_depth', { stat: 'max' }), 11);
    assert.equal(value(samples, 'sdc_agent_uptime_seconds', { stat: 'min' }), 5.2);
    assert.equal(value(samples, 'sdc_agent_uptime_seconds', { stat: 'median' }), 60.2);
    assert.equal(value(samples, 'sdc_agent_uptime_seconds', { stat: 'max' }), 3600.2);

    // A newer heartbeat replaces the figures; an agent that restarted reports a low uptime.
    await heartbeat(c, { uptime_ms: 100, queue_depth: 1 });
    const restarted = await scrape();
    assert.equal(value(restarted, 'sdc_agent_queue_depth', { stat: 'sum' }), 4);
    assert.equal(value(restarted, 'sdc_agent_uptime_seconds', { stat: 'min' }), 0.1);
    assert.equal(value(restarted, 'sdc_agent_uptime_seconds', { stat: 'max' }), 60.2);

    // A session that ends takes its report with it: the device's next session replaces it and has not reported yet.
    const aAgain = await connect('dev-report-a');
    await driver.until(() => a.closed, 2_000, 'the replaced session closed');
    const replaced = await scrape();
    assert.equal(value(replaced, 'sdc_agents_online', { role: 'gateway' }), 3);
    assert.equal(value(replaced, 'sdc_agents_reporting'), 2);
    assert.equal(value(replaced, 'sdc_agent_queue_depth', { stat: 'max' }), 1);
    await heartbeat(aAgain, { uptime_ms: 7_000, queue_depth: 2 });
    assert.equal(value(await scrape(), 'sdc_agent_queue_depth', { stat: 'sum' }), 3);
  });

  it('counts WebSocket refusals by error code: a malformed frame and a replayed one', async () => {
    const agent = await connect('dev-report-junk');
    const before = await scrape();
    const count = (samples: ExpositionSample[], code: string): number => value(samples, 'sdc_websocket_errors_total', { code }) ?? 0;
    agent.sendRaw('{"v":1,');
    agent.connection.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, driver.time.nowMs());
    const [frame] = agent.connection.takeOutgoing();
    agent.sendRaw(frame!);
    agent.sendRaw(frame!);
    await driver.until(() => (agent.errorCodes().length >= 2 ? true : undefined), 2_000, 'two ERROR frames');
    const after = await scrape();
    assert.equal(count(after, 'PROTO_JSON_SYNTAX') - count(before, 'PROTO_JSON_SYNTAX'), 1);
    assert.equal(count(after, 'PROTO_REPLAY') - count(before, 'PROTO_REPLAY'), 1);
  });
});

describe('sdc_ota_executions_total (the hook the OTA code calls)', () => {
  it('counts terminal executions by state and outcome from zero, and counts nothing for a state that is not terminal', async () => {
    const metrics = new ServiceMetrics();
    const initial = parseExposition(await metrics.text());
    assert.equal(findSample(initial, 'sdc_ota_executions_total', { state: 'succeeded', outcome: 'success' })?.value, 0);
    assert.equal(findSample(initial, 'sdc_ota_executions_total', { state: 'canceled', outcome: 'not_counted' })?.value, 0);
    assert.equal(metrics.otaExecutionFinished('succeeded'), true);
    assert.equal(metrics.otaExecutionFinished('succeeded'), true);
    assert.equal(metrics.otaExecutionFinished('rolled_back'), true);
    assert.equal(metrics.otaExecutionFinished('timed_out'), true);
    assert.equal(metrics.otaExecutionFinished('downloading'), false);
    const samples = parseExposition(await metrics.text());
    assert.equal(findSample(samples, 'sdc_ota_executions_total', { state: 'succeeded', outcome: 'success' })?.value, 2);
    assert.equal(findSample(samples, 'sdc_ota_executions_total', { state: 'rolled_back', outcome: 'failure' })?.value, 1);
    assert.equal(findSample(samples, 'sdc_ota_executions_total', { state: 'timed_out', outcome: 'failure' })?.value, 1);
    assert.equal(findSample(samples, 'sdc_ota_executions_total', { state: 'downloading' }), undefined);
    // The success rate a dashboard computes: success over success and failure (canceled not counted).
    const byOutcome = (outcome: string) => samples.filter((s) => s.name === 'sdc_ota_executions_total' && s.labels['outcome'] === outcome).reduce((n, s) => n + s.value, 0);
    assert.equal(byOutcome('success') / (byOutcome('success') + byOutcome('failure')), 0.5);
    metrics.stop();
  });
});
