// The liveness probe over TLS + WebSocket with real ws clients (issue 12, TRMM #1348). Both
// devices send nothing after AUTH. The one whose ws answers pings (ws does by default) stays
// online through several probes; the half-open one (autoPong off: its socket is open, nobody
// answers) is closed with 4000 and reported offline. Condition waits only: the exact times are
// proven on virtual time in liveness-probe.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type WebSocket from 'ws';
import { kvKeys } from '../bus-contract/streams.js';
import { probeUnansweredReason, type GatewayCore } from './gateway-core.js';
import { startGatewayServer, type GatewayServer } from './gateway-server.js';
import { connectTls, embeddedStores, eventually, makeCore, makeGatewayPki, StreamReader, type GatewayPki, type TestStores } from './test-support.js';

// Real time on a busy machine: the pong gets 400 ms to come back (the bound is still 1.5 intervals).
const heartbeatIntervalMs = 1_000;
const probeGraceMs = 100;
const probeTimeoutMs = 400;

describe('liveness probe over TLS', () => {
  let gpki: GatewayPki;
  let stores: TestStores;
  let core: GatewayCore;
  let server: GatewayServer;
  let events: StreamReader;
  const sockets: WebSocket[] = [];

  before(async () => {
    gpki = await makeGatewayPki();
    stores = embeddedStores();
    core = makeCore(stores, { heartbeatIntervalMs, probeGraceMs, probeTimeoutMs, authTimeoutMs: 30_000, ackTimeoutMs: 60_000 });
    await core.start();
    server = await startGatewayServer({ core, tls: gpki.serverTls, host: '127.0.0.1', port: 0, trustAnchors: [gpki.pki.intermediate.certificate, gpki.pki.root.certificate] });
    events = new StreamReader(stores.bus);
  });

  after(async () => {
    for (const ws of sockets) ws.terminate();
    await server.close();
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  const presenceOf = (deviceId: string) => events.entries.filter((e) => e.kind === 'presence' && e.data.device_id === deviceId).map((e) => e.kind === 'presence' && e.data);

  async function quietDevice(deviceId: string, autoPong: boolean) {
    const { agent, ws } = await connectTls(server.address.url, await gpki.issueDevice(deviceId), gpki.serverTls.caPem, undefined, { autoPong });
    sockets.push(ws);
    const pings = { count: 0 };
    ws.on('ping', () => { pings.count += 1; });
    await eventually(() => (agent.ready ? true : undefined), 10_000, 'AUTH_ACK');
    return { agent, pings };
  }

  it('a quiet device that answers pings stays online; a half-open one is closed and reported offline', async () => {
    const healthy = await quietDevice('dev-answers', true);
    const halfOpen = await quietDevice('dev-half-open', false);

    await events.waitFor(() => presenceOf('dev-half-open').some((p) => p !== false && !p.online));
    const offline = presenceOf('dev-half-open').find((p) => p !== false && !p.online);
    assert.ok(offline !== undefined && offline !== false);
    // The probe's close; or, when a stalled event loop fired the probe timer after the silence
    // deadline (both fall due at 1.5 intervals here), the silence deadline's: the same bound either way.
    assert.ok(offline.reason === probeUnansweredReason || offline.reason === 'peer silent past its deadline', String(offline.reason));
    if (offline.reason === probeUnansweredReason) assert.ok(halfOpen.pings.count >= 1, 'it was probed before it was closed');
    await eventually(() => halfOpen.agent.closed, 10_000, 'close');
    assert.equal(halfOpen.agent.closed?.code, 4000);

    // Four probes answered: at least four heartbeat intervals of silence, past the 1.5-interval bound.
    await eventually(() => (healthy.pings.count >= 4 ? true : undefined), 30_000, 'four probes of the quiet device');
    await events.poll();
    assert.deepEqual(presenceOf('dev-answers').map((p) => p !== false && p.online), [true], 'online once, never offline');
    assert.equal(healthy.agent.closed, undefined);
    assert.notEqual(await stores.kv.get(kvKeys.presence('dev-answers')), null, 'its presence key is kept by the pongs');
  });
});
