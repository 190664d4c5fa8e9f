// Issue 12, 11.1: GET /metrics in the Prometheus text format on the control plane's API and on a
// metrics listener of its own; scraped and parsed here after real work (an API refusal, a command
// reaching a final state, a telemetry sample stored), and refused without the scrape token or
// from a non-loopback peer.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { streamNames } from '../bus-contract/streams.js';
import { deviceFrame, makeDeviceKey } from '../control-plane/test-support.js';
import { startDeployment, type Deployment } from '../deployment/deployment.js';
import { initDeployment, type DeploymentMaterials } from '../materials/materials.js';
import { requireScrapeAllowed } from './metrics.js';

interface Sample { name: string; labels: Record<string, string>; value: number }

/** The text exposition format, as a scraper reads it: `name{label="value",...} value` lines; comments skipped. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    const value = match[3] === '+Inf' ? Infinity : Number(match[3]);
    assert.ok(!Number.isNaN(value), line);
    samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

const find = (samples: Sample[], name: string, labels: Record<string, string> = {}): Sample | undefined =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

function get(url: string, caPem: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const send = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = send(url, { method: 'GET', headers, agent: false, timeout: 30_000, ...(url.startsWith('https:') ? { ca: caPem } : {}) }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, type: String(response.headers['content-type']), body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

async function withDeployment(options: { metricsScrapeToken?: string }, run: (deployment: Deployment, materials: DeploymentMaterials) => Promise<void>): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-metrics-'));
  try {
    const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
    const deployment = await startDeployment({
      materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger: pino({ level: 'silent' }),
      apiPort: 0, gatewayPort: 0, metricsPort: 0, scryptParams: { N: 1024, r: 8, p: 1 }, ...options,
    });
    try {
      await run(deployment, materials);
    } finally {
      await deployment.stop();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function eventually<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}

describe('GET /metrics (Prometheus text format)', () => {
  it('the control plane and its gateway: command latency by opcode and final state, bus pending, DLQ depth, agents online, telemetry, error counts, event-loop delay', async () => {
    await withDeployment({}, async (deployment, materials) => {
      const cp = deployment.controlPlane!;
      const api = deployment.apiUrl!;
      // An API refusal, a command that reaches a final state, a telemetry sample stored.
      assert.equal((await get(`${api}/v1/devices`, materials.rootCaPem)).status, 401);
      const device = 'metrics-dev-1';
      const key = await makeDeviceKey(device);
      const { token } = await cp.devices.createPairingToken({ actor: 'root', deviceId: device });
      await cp.devices.enroll({ deviceId: device, token, csrPem: key.csrPem });
      const { command } = await cp.commands.create({ actor: { name: 'op', role: 'operator' }, deviceId: device, opcode: 'EXEC_PING_KERNEL', args: {} });
      assert.equal((await cp.commands.transition(command.id, 'expire', Date.now())).applied, true);
      const frame = deviceFrame({ deviceId: device, seed: key.seed, type: 'TELEMETRY', ts: Date.now(), body: {
        sampled_at: Date.now(), metrics: { cpu_pct: 12.5, mem_pct: 40, disk_pct: 71.2, net_rx_bytes_per_sec: 2048, net_tx_bytes_per_sec: 512 },
      } });
      await deployment.stores.bus.append(streamNames.telemetry, encodeBusEntry('telemetry', { device_id: device, gateway_id: 'gw-1', received_at_ms: Date.now(), frame }));

      const samples = await eventually('the telemetry sample counted', async () => {
        const scrape = await get(`${api}/metrics`, materials.rootCaPem);
        assert.equal(scrape.status, 200, scrape.body);
        assert.match(scrape.type, /^text\/plain; version=0\.0\.4/);
        const parsed = parseExposition(scrape.body);
        return (find(parsed, 'sdc_telemetry_samples_total', { role: 'control-plane' })?.value ?? 0) >= 1 ? parsed : undefined;
      });
      assert.equal(find(samples, 'sdc_command_latency_seconds_count', { opcode: 'EXEC_PING_KERNEL', final_state: 'expired' })?.value, 1);
      assert.ok(find(samples, 'sdc_command_latency_seconds_bucket', { opcode: 'EXEC_PING_KERNEL', final_state: 'expired', le: '+Inf' }));
      assert.ok((find(samples, 'sdc_http_errors_total', { status: '401' })?.value ?? 0) >= 1, 'the 401 counted');
      assert.ok(find(samples, 'sdc_http_errors_total', { status: '401' })!.labels.code!.startsWith('API_'));
      for (const [stream, group] of [[streamNames.events, 'control-plane'], [streamNames.telemetry, 'telemetry-writer'], ['sdc:gw:gw-1:commands', 'gateways']]) {
        assert.ok(find(samples, 'sdc_bus_pending_entries', { stream: stream!, group: group! }), `pending of ${stream}/${group}`);
        assert.ok(find(samples, 'sdc_dlq_depth', { stream: stream! }), `DLQ depth of ${stream}`);
      }
      assert.equal(find(samples, 'sdc_agents_online', { role: 'control-plane' })?.value, 0);
      assert.equal(find(samples, 'sdc_agents_online', { role: 'gateway' })?.value, 0);
      // The event-loop delay is sampled from the first scrape on: present from the second.
      const again = parseExposition((await get(`${api}/metrics`, materials.rootCaPem)).body);
      for (const quantile of ['0.5', '0.99', 'max']) assert.ok(find(again, 'sdc_event_loop_delay_seconds', { quantile }), quantile);
      assert.ok(samples.some((s) => s.name === 'sdc_websocket_errors_total') || /# TYPE sdc_websocket_errors_total counter/.test((await get(`${api}/metrics`, materials.rootCaPem)).body));

      // The metrics listener (what a gateway-only process serves) answers the same registry.
      const own = await get(deployment.metricsUrl!, materials.rootCaPem);
      assert.equal(own.status, 200);
      assert.ok(find(parseExposition(own.body), 'sdc_agents_online', { role: 'gateway' }));
    });
  });

  it('with a scrape token: refused without it or with another (401 API_METRICS_TOKEN_INVALID), answered with it; on the API and the metrics listener', async () => {
    const scrapeToken = 'scrape-token-0123456789abcdef';
    await withDeployment({ metricsScrapeToken: scrapeToken }, async (deployment, materials) => {
      for (const url of [`${deployment.apiUrl!}/metrics`, deployment.metricsUrl!]) {
        for (const headers of [{}, { authorization: 'Bearer scrape-token-0123456789abcdeX' }, { authorization: scrapeToken }] as Array<Record<string, string>>) {
          const refused = await get(url, materials.rootCaPem, headers);
          assert.equal(refused.status, 401, `${url} ${JSON.stringify(headers)}`);
          assert.equal((JSON.parse(refused.body) as { error: { code: string } }).error.code, 'API_METRICS_TOKEN_INVALID');
        }
        const ok = await get(url, materials.rootCaPem, { authorization: `Bearer ${scrapeToken}` });
        assert.equal(ok.status, 200);
        assert.ok(parseExposition(ok.body).length > 0);
      }
    });
  });

  it('without a token, loopback peers only (API_METRICS_FORBIDDEN otherwise)', () => {
    for (const remoteAddress of ['127.0.0.1', '127.3.2.1', '::1', '::ffff:127.0.0.1']) requireScrapeAllowed({ scrapeToken: undefined, authorization: undefined, remoteAddress });
    for (const remoteAddress of ['10.0.0.5', '::ffff:10.0.0.5', '192.168.1.2', 'fe80::1', undefined]) {
      assert.throws(() => requireScrapeAllowed({ scrapeToken: undefined, authorization: undefined, remoteAddress }), (error) => SdcError.is(error, 'API_METRICS_FORBIDDEN'));
    }
  });
});
