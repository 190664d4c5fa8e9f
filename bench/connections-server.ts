import { createServer } from 'node:https';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { SdcError } from '../core/errors/index.js';
import { defaultProtocolLimits } from '../core/protocol/limits.js';
import { sessionIdContextFor } from '../server/gateway/tls-session-tickets.js';
import type { ServerMemory, ServerReport, ServerRequest } from './connections-messages.js';

/** The gateway's WebSocket path (server/gateway/gateway-server.ts agentPathDefault), which the bare server serves too. */
const agentPath = '/v1/agent';

/**
 * A server child of `sdc bench connections|reconnect`, forked with --expose-gc so its memory can
 * be read after a full collection. `process.argv[2]` says which:
 *
 * - `gateway`: a real gateway-only process, started as `sdc gateway` starts one
 *   (startDeployment with controlPlane false, the shared Redis, the data directory's keys and a
 *   certificate of its own in D/tls/gateway-ID.pem).
 * - `bare`: the baseline, a mutual-TLS `ws` server with the gateway's TLS settings (TLS 1.3,
 *   client certificate required and checked against the same CAs) that only holds connections.
 */

const role = process.argv[2];
let stopServer: (() => Promise<void>) | undefined;
let connections: () => number = () => 0;
/** The agents' messages the gateway received so far (GatewayServer.received); the bare server reads none. */
let framesReceived: () => number = () => 0;
let tlsHandshakes: () => Promise<{ full: number; resumed: number; dropped: Record<string, number> }> = async () => ({ full: 0, resumed: 0, dropped: {} });

const send = (report: ServerReport): void => {
  if (process.connected) process.send?.(report);
};

/**
 * With SDC_BENCH_HEAP_SNAPSHOT_DIR set, every memory reading also writes a V8 heap snapshot there
 * (`<role>-<pid>-<n>.heapsnapshot`), for the per-session breakdown in docs/benchmarks.md. It
 * costs seconds and about the heap's size on disk per reading, so it is off by default. Writing
 * the idle snapshot grows the process, so in such a run the loaded RSS is not comparable: read the
 * heap (scripts/heap-snapshot-diff.mjs over an N and a 2N run) and malloc's bytes in use instead.
 */
const heapSnapshotDir = process.env.SDC_BENCH_HEAP_SNAPSHOT_DIR;
let heapSnapshots = 0;

/**
 * glibc's own count of the bytes malloc has handed out and not had back (all arenas, mmapped
 * blocks too), which RSS hides under fragmentation and arenas kept after a burst of handshakes.
 * With SDC_BENCH_MALLOC_STATS=1 (and a snapshot directory) gdb calls `malloc_stats()` in this
 * process, which prints to our stderr (the bench's), after a marker line naming the reading.
 * Needs gdb and the right to ptrace this process (root here); a failure is reported, not fatal.
 */
function printMallocStats(label: string): void {
  process.stderr.write(`malloc_stats ${label}:\n`);
  // gdb exits 1 here after the call has printed (it cannot restore the AVX state in this container), so its status says nothing.
  const gdb = spawnSync('gdb', ['-p', String(process.pid), '-batch', '-nx', '-ex', 'call (void)malloc_stats()'], { stdio: 'ignore', timeout: 60_000 });
  if (gdb.error !== undefined) process.stderr.write(`malloc_stats: gdb did not run: ${gdb.error.message}\n`);
}

/** The snapshot, and beside it the reading: memoryUsage, V8's heap spaces and the kernel's view (/proc/self/status). */
function writeSnapshot(dir: string, usage: NodeJS.MemoryUsage): void {
  const name = `${role ?? 'server'}-${process.pid}-${heapSnapshots++}`;
  const base = join(dir, name);
  if (process.env.SDC_BENCH_MALLOC_STATS === '1') printMallocStats(`${name} connections=${connections()}`);
  const status = readFileSync('/proc/self/status', 'utf8').split('\n').filter((line) => /^(Vm|Rss)/.test(line));
  writeFileSync(`${base}.json`, JSON.stringify({ connections: connections(), usage, heapSpaces: getHeapSpaceStatistics(), status, rssByMapping: rssByMapping() }, null, 1));
  writeHeapSnapshot(`${base}.heapsnapshot`);
}

/**
 * Resident KiB per kind of mapping (/proc/self/smaps): the brk heap is glibc's main malloc arena,
 * file mappings are code; anonymous ones are V8's pages, other threads' malloc arenas and large
 * mallocs, told apart only roughly by the size of the mapping.
 */
function rssByMapping(): Record<string, number> {
  const totals: Record<string, number> = {};
  let kind = '';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      const sizeMib = (parseInt(header[2]!, 16) - parseInt(header[1]!, 16)) / 2 ** 20;
      const name = header[3] ?? '';
      kind = name.startsWith('/') ? 'file' : name !== '' ? name : sizeMib >= 60 ? 'anon >=60 MiB' : sizeMib >= 1 ? 'anon 1-60 MiB' : 'anon <1 MiB';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) totals[kind] = (totals[kind] ?? 0) + Number(rss[1]);
  }
  return totals;
}

function memory(): ServerMemory {
  (globalThis as { gc?: () => void }).gc?.();
  const usage = process.memoryUsage();
  // After the reading: writing a snapshot grows the process.
  if (heapSnapshotDir) writeSnapshot(heapSnapshotDir, usage);
  const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.physical_space_size ?? 0;
  return { rssBytes: usage.rss, heapUsedBytes: usage.heapUsed, externalBytes: usage.external, youngGenerationBytes: young, connections: connections() };
}

/**
 * The deployment's modules are loaded here, in the gateway role only: the bare server never runs
 * them, and loading them cost each bare child about 2 s of CPU (under tsx) for nothing. It does
 * not move the baseline: at 2,500 connections and load ~20 the bare server grew 53.5 and 52.8 KiB
 * per connection without them, 54.7 and 57.4 KiB with them (docs/benchmarks.md, 2026-12-03).
 */
/**
 * The gateway's default (gatewayDefaults.connectionsMax, 10,000) would refuse the 19,000
 * agents on one gateway with GATEWAY_CONNECTIONS_FULL; the bench raises it to what one process
 * can hold here (20,000 open files, less Redis's sockets and the process's own files).
 */
const benchConnectionsMax = 19_900;

async function startGateway(request: Extract<ServerRequest, { type: 'start' }>): Promise<string> {
  const [{ pino }, { loadDeployment }, { startDeployment }, { agentPathDefault }, { systemClock, systemRandom, systemScheduler }] = await Promise.all([
    import('pino'), import('../server/materials/materials.js'), import('../server/deployment/deployment.js'), import('../server/gateway/gateway-server.js'),
    import('../runtime/system.js'),
  ]);
  if (agentPathDefault !== agentPath) throw new SdcError('BENCH_FAILED', `the gateway serves ${agentPathDefault}, the bare server ${agentPath}`);
  const materials = await loadDeployment({ dataDir: request.dataDir, clock: systemClock, random: systemRandom, serverTlsName: `gateway-${request.gatewayId}` });
  const deployment = await startDeployment({
    materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger: pino({ level: process.env.SDC_LOG_LEVEL ?? 'silent' }),
    controlPlane: false, redisUrl: request.redisUrl, keyPrefix: request.keyPrefix, gatewayId: request.gatewayId, gatewayPort: 0,
    gateway: { heartbeatIntervalMs: request.heartbeatIntervalMs, connectionsMax: benchConnectionsMax },
    ...(request.ticketSecretHex === undefined ? {} : { gatewayTicketSecret: new Uint8Array(Buffer.from(request.ticketSecretHex, 'hex')) }),
    ...(request.pendingHandshakesPerSourceMax === undefined ? {} : { gatewayPendingHandshakesPerSourceMax: request.pendingHandshakesPerSourceMax }),
    ...(request.handshakesInFlightMax === undefined ? {} : { gatewayHandshakesInFlightMax: request.handshakesInFlightMax }),
    // Every bench agent comes from 127.0.0.1: a bound per address would measure the bench, not a fleet.
    gatewayEstablishedLimits: { socketsPerSourceMax: benchConnectionsMax, unauthenticatedSocketsPerSourceMax: benchConnectionsMax },
  });
  stopServer = () => deployment.stop();
  tlsHandshakes = async () => {
    const dropped: Record<string, number> = {};
    for (const { labels, value } of (await deployment.metrics.websocketErrors.get()).values) dropped[String(labels.code)] = value;
    return { ...deployment.gatewayServer.tlsHandshakes, dropped };
  };
  framesReceived = () => deployment.gatewayServer.received.frames;
  // Every TCP socket of the process (Redis's too): the bench takes the growth from the idle reading.
  connections = () => process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap').length;
  return deployment.gatewayUrl;
}

/**
 * The gateway's TLS and ws settings that the bare server can share without the gateway's code
 * (server/gateway/gateway-server.ts): its handshake timeout (handshakeLimitsDefault, 10 s, not
 * Node's 120 s), its session id context (a digest of the CAs) and its WebSocket message bound
 * (twice the protocol's frame limit, not ws's 100 MiB). None of them allocates per connection in a
 * way that differs (the timeout is a Timeout either way, the bound only a number), but a baseline
 * that differs only where it must is easier to trust. What it must differ in: the gateway's ticket
 * keys come from its signing key (the bare server keeps Node's random ones: one set per process
 * either way) and its own per-session work, which is what the bench measures.
 */
const bareHandshakeTimeoutMs = 10_000;
const bareMaxPayloadBytes = 2 * defaultProtocolLimits.frameBytesMax;

async function startBare(request: Extract<ServerRequest, { type: 'start' }>): Promise<string> {
  const server = createServer({
    cert: request.tls.certPem, key: request.tls.keyPem, ca: request.tls.caPem,
    minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true,
    handshakeTimeout: bareHandshakeTimeoutMs, sessionIdContext: sessionIdContextFor(request.tls.caPem),
  });
  const wss = new WebSocketServer({ server, path: agentPath, maxPayload: bareMaxPayloadBytes });
  // Echoes what a client sends (the baseline with traffic; the idle baseline's clients send nothing),
  // as the gateway answers each heartbeat.
  wss.on('connection', (ws) => {
    ws.on('error', () => undefined);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  connections = () => wss.clients.size;
  stopServer = async () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return `wss://127.0.0.1:${(server.address() as AddressInfo).port}${agentPath}`;
}

process.on('message', (request: ServerRequest) => {
  if (request.type === 'start') {
    (role === 'gateway' ? startGateway(request) : startBare(request)).then(
      (url) => send({ type: 'listening', url, pid: process.pid }),
      (error: unknown) => send({ type: 'failed', message: error instanceof Error ? error.message : String(error) }),
    );
  } else if (request.type === 'memory') {
    send({ type: 'memory', ...memory() });
  } else if (request.type === 'cpu') {
    const { user, system } = process.cpuUsage();
    send({ type: 'cpu', userUs: user, systemUs: system, framesReceived: framesReceived() });
  } else if (request.type === 'tlsHandshakes') {
    void tlsHandshakes().then((counts) => send({ type: 'tlsHandshakes', ...counts }));
  } else {
    void (stopServer?.() ?? Promise.resolve()).finally(() => {
      send({ type: 'stopped' });
      process.exit(0);
    });
  }
});
// The parent went away: nothing is measured any more.
process.on('disconnect', () => process.exit(0));
