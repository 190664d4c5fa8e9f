import type { ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { SdcError } from '../core/errors/index.js';
import { forkSiblingModule } from '../runtime/fork-module.js';
import type { EnrollClientReport, EnrollClientRequest } from './enroll-client-worker.js';
import { startBenchDeployment, type BenchDeployment } from './roundtrip-deployment.js';
import { hdrLatencyTableSummary } from './latency-hdr.js';

/**
 * `sdc bench enroll` (issue 15: "an enrollment path that sustains at least 100 enrollments per
 * second on this machine"). The real path: pairing tokens from the bulk API (timed apart), then
 * every device's `POST /v1/enroll` over a new TLS connection, `concurrency` at once, from a client
 * process of its own, so the control plane's CPU per enrollment is this process's and the
 * clients' is theirs. The baseline, in the same run and from the same client process: a bare
 * HTTPS server (node:https, the API's certificate, TLS 1.3, a client certificate requested as the
 * API does) that reads the same request bodies and answers a body of an enrollment answer's size,
 * over a new connection each: the floor that TLS set-up and HTTP cost on this machine.
 */

export interface EnrollBenchOptions {
  readonly devices: number;
  readonly concurrency: number;
  readonly dataDir: string;
  readonly redisUrl?: string;
  readonly mysqlUrl?: string;
  readonly progress?: (line: string) => void;
}

export interface EnrollBenchRow {
  readonly path: 'bare-https' | 'enroll';
  readonly requests: number;
  readonly failures: number;
  readonly per_s: number;
  readonly server_cpu_ms_per_request: number;
  readonly client_cpu_ms_per_request: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
}

export interface EnrollBenchResult {
  readonly rows: readonly EnrollBenchRow[];
  readonly stores: string;
  readonly pairingTokensMs: number;
  readonly firstFailure: string | null;
  /** Enrollments per second over the bare server's requests per second, both in this run. */
  readonly ratioToBare: number;
  readonly goalPerSecond: number;
  /** Each answered request's latency (ms), per path: the CDFs of `enroll-percentiles.csv`. */
  readonly latenciesMs: { readonly bare_https: readonly number[]; readonly enroll: readonly number[] };
}

export const enrollGoalPerSecond = 100;
export const enrollDevicesMax = 20_000;
const requestTimeoutMs = 60_000;
/** The API takes a list of at most 500 device ids per call (its body limit); the bench names its own ids. */
const pairingTokensPerCall = 500;
/** The bare server's answer: about an enrollment answer's size (certificate, chain, keys). */
const bareAnswer = JSON.stringify({ padding: 'x'.repeat(3_000) });
/** A request body larger than any enrollment's is refused by the bare server, as the API would. */
const bareBodyBytesMax = 64 * 1024;

export async function runEnrollBench(options: EnrollBenchOptions): Promise<EnrollBenchResult> {
  if (!Number.isSafeInteger(options.devices) || options.devices < 1 || options.devices > enrollDevicesMax) {
    throw new RangeError(`devices must be 1 to ${enrollDevicesMax}`);
  }
  const progress = options.progress ?? (() => undefined);
  const deployment = await startBenchDeployment({
    dataDir: options.dataDir, logger: pino({ level: 'silent' }),
    ...(options.redisUrl ? { redisUrl: options.redisUrl } : {}), ...(options.mysqlUrl ? { mysqlUrl: options.mysqlUrl } : {}),
  });
  const client = startClient();
  let bare: Server | undefined;
  try {
    const deviceIds = Array.from({ length: options.devices }, (_, i) => `enr-${deployment.runTag}-${String(i).padStart(6, '0')}`);
    progress(`making ${deviceIds.length} device keys and CSRs (not timed)`);
    const prepared = client.next('prepared');
    client.send({ type: 'prepare', deviceIds });
    await prepared;

    const tokensStartMs = performance.now();
    const tokens = await pairingTokens(deployment, deviceIds);
    const pairingTokensMs = performance.now() - tokensStartMs;

    bare = await startBareServer(deployment.materials.serverTls);
    const bareUrl = `https://localhost:${(bare.address() as AddressInfo).port}/v1/enroll`;
    progress('baseline: bare HTTPS, a new connection per request');
    const bareRow = await measure('bare-https', client, { url: bareUrl, caPem: deployment.caPem, tokens, concurrency: options.concurrency });
    progress('enrollments: POST /v1/enroll, a new connection per device');
    const enrollRow = await measure('enroll', client, { url: new URL('/v1/enroll', deployment.apiUrl).toString(), caPem: deployment.caPem, tokens, concurrency: options.concurrency });
    return {
      rows: [bareRow.row, enrollRow.row],
      stores: `${options.mysqlUrl ? 'mysql' : 'sql.js'} + ${options.redisUrl ? 'redis' : 'embedded kv'}`,
      pairingTokensMs,
      firstFailure: enrollRow.firstFailure ?? bareRow.firstFailure,
      ratioToBare: bareRow.row.per_s > 0 ? enrollRow.row.per_s / bareRow.row.per_s : 0,
      goalPerSecond: enrollGoalPerSecond,
      latenciesMs: { bare_https: bareRow.latenciesMs, enroll: enrollRow.latenciesMs },
    };
  } finally {
    client.stop();
    await new Promise<void>((resolve) => { if (bare === undefined) resolve(); else bare.close(() => resolve()); });
    await deployment.stop();
  }
}

async function pairingTokens(deployment: BenchDeployment, deviceIds: readonly string[]): Promise<string[]> {
  const tokens: string[] = [];
  for (let start = 0; start < deviceIds.length; start += pairingTokensPerCall) {
    const answer = await deployment.api<{ items: Array<{ device_id: string; token: string }> }>(
      'POST', '/v1/pairing-tokens', { device_ids: deviceIds.slice(start, start + pairingTokensPerCall) });
    tokens.push(...answer.items.map((item) => item.token));
  }
  return tokens;
}

/** One run of every device's request; the server's CPU is this process's over the run. */
async function measure(
  label: EnrollBenchRow['path'], client: EnrollClient, run: { url: string; caPem: string; tokens: readonly string[]; concurrency: number },
): Promise<{ row: EnrollBenchRow; firstFailure: string | null; latenciesMs: readonly number[] }> {
  const ran = client.next('ran');
  const cpuBefore = process.cpuUsage();
  client.send({ type: 'run', label, ...run, timeoutMs: requestTimeoutMs });
  const report = await ran;
  const cpu = process.cpuUsage(cpuBefore);
  const requests = report.latenciesMs.length + report.failures;
  // HdrHistogram percentiles (bench/latency-hdr.ts), as every bench's latency table; enroll-samples.csv keeps each request.
  const latency = hdrLatencyTableSummary(report.latenciesMs);
  return {
    row: {
      path: label, requests, failures: report.failures,
      per_s: report.latenciesMs.length / (report.wallMs / 1000),
      server_cpu_ms_per_request: (cpu.user + cpu.system) / 1000 / requests,
      client_cpu_ms_per_request: report.cpuMs / requests,
      p50_ms: latency.p50, p99_ms: latency.p99,
    },
    firstFailure: report.firstFailure,
    latenciesMs: report.latenciesMs,
  };
}

function startBareServer(tls: { readonly certPem: string; readonly keyPem: string; readonly caPem: string }): Promise<Server> {
  const server = createServer({ cert: tls.certPem, key: tls.keyPem, ca: tls.caPem, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: false, keepAlive: false }, (req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > bareBodyBytesMax) req.destroy();
    });
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'application/json', connection: 'close' });
      res.end(bareAnswer);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

interface EnrollClient {
  send(request: EnrollClientRequest): void;
  /** The next report of `type`; a failure or the process's exit rejects it. */
  next<T extends 'prepared' | 'ran'>(type: T): Promise<Extract<EnrollClientReport, { type: T }>>;
  stop(): void;
}

function startClient(): EnrollClient {
  const child: ChildProcess = forkSiblingModule(import.meta.url, 'enroll-client-worker');
  let waiting: { type: string; resolve: (report: EnrollClientReport) => void; reject: (error: Error) => void } | undefined;
  const fail = (error: Error): void => { waiting?.reject(error); waiting = undefined; };
  child.on('message', (report: EnrollClientReport) => {
    if (report.type === 'failed') fail(new SdcError('BENCH_FAILED', `enroll client: ${report.message}`));
    else if (waiting?.type === report.type) { waiting.resolve(report); waiting = undefined; }
  });
  child.on('exit', (code, signal) => fail(new SdcError('BENCH_FAILED', `enroll client exited with ${signal ?? `code ${code}`}`)));
  return {
    send: (request) => { if (child.connected) child.send(request); },
    next: <T extends 'prepared' | 'ran'>(type: T) => new Promise<Extract<EnrollClientReport, { type: T }>>((resolve, reject) => {
      waiting = { type, resolve: resolve as (report: EnrollClientReport) => void, reject };
    }),
    stop: () => { if (child.connected) child.send({ type: 'stop' }); else child.kill(); },
  };
}
