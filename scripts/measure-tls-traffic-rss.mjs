// What traffic alone does to a Node TLS server's resident memory per connection (issue 15: the
// gateway's memory per session is compared with a bare server holding *idle* connections).
// Not a test and not a bench with a baseline: a measurement of the runtime, with none of our code.
//
//   node scripts/measure-tls-traffic-rss.mjs [--connections 2000] [--messages 0,1,5,20,60]
//     [--bytes 300] [--interval-ms 300] [--server ws|tls] [--echo 1|0] [--rounds 1]
//
// For each message count it starts a fresh server child (`--expose-gc`) and a client child:
// the clients open `connections` TLS 1.3 connections with client certificates (mutual TLS, Ed25519,
// a throwaway CA made with the openssl command line), the server is read, then every client
// sends `messages` messages of `bytes` bytes, one every `interval-ms`, which the server echoes
// (`--echo 0`: only reads), and the server is read again. A reading is `process.memoryUsage()`
// after `gc()`. Printed per connection: RSS, V8 heap used and ArrayBuffers, from no connections to
// connected (idle) and from connected to after the traffic; and, with glibc, malloc's own count of
// the bytes it has handed out and not had back (mallinfo2 through koffi: in-use chunks plus mmapped
// blocks), which tells live native allocations from pages that are merely resident. `--server ws` is a `ws` server on an
// HTTPS server (as the gateway and the bench's bare baseline are); `tls` is a bare `tls` echo.
import { fork, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import koffi from 'koffi';
import WebSocket, { WebSocketServer } from 'ws';

const self = fileURLToPath(import.meta.url);
const role = process.argv[2];

/** A CA, a server certificate for 127.0.0.1 and one client certificate, Ed25519, in a temporary directory. */
function makeCertificates() {
  const dir = mkdtempSync(join(tmpdir(), 'sdc-tls-rss-'));
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  openssl('req', '-x509', '-newkey', 'ed25519', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=measure-ca');
  for (const name of ['server', 'client']) {
    openssl('req', '-newkey', 'ed25519', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), name === 'server' ? 'subjectAltName=IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n');
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  }
  return dir;
}

function tlsFiles(dir, name) {
  return { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.pem`)), ca: readFileSync(join(dir, 'ca.pem')) };
}

/** glibc's mallinfo2 (all arenas): bytes in use, or null where there is no glibc. */
function mallocInUseReader() {
  try {
    const fields = ['arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost'];
    const MallInfo2 = koffi.struct('mallinfo2_t', Object.fromEntries(fields.map((name) => [name, 'size_t'])));
    const mallinfo2 = koffi.load('libc.so.6').func('mallinfo2', MallInfo2, []);
    return () => { const info = mallinfo2(); return Number(info.uordblks) + Number(info.hblkhd); };
  } catch {
    return () => null;
  }
}

function runServer(dir, kind, echo) {
  const mallocInUse = mallocInUseReader();
  let connections = 0;
  const options = { ...tlsFiles(dir, 'server'), minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true };
  let listener;
  if (kind === 'ws') {
    listener = createHttpsServer(options);
    const wss = new WebSocketServer({ server: listener, perMessageDeflate: false, maxPayload: 64 * 1024 });
    wss.on('connection', (socket) => {
      connections++;
      socket.on('message', (data) => { if (echo) socket.send(data); });
      socket.on('close', () => connections--);
    });
  } else {
    listener = tls.createServer(options, (socket) => {
      connections++;
      socket.on('data', (data) => { if (echo) socket.write(data); });
      socket.on('error', () => {});
      socket.on('close', () => connections--);
    });
  }
  listener.listen(0, '127.0.0.1', () => process.send({ port: listener.address().port }));
  process.on('message', () => {
    globalThis.gc();
    const usage = process.memoryUsage();
    process.send({ reading: { connections, rssBytes: usage.rss, heapUsedBytes: usage.heapUsed, heapTotalBytes: usage.heapTotal, arrayBuffersBytes: usage.arrayBuffers, mallocInUseBytes: mallocInUse() } });
  });
}

async function runClient(dir, kind, port, count, messages, bytes, intervalMs) {
  const options = { ...tlsFiles(dir, 'client'), servername: undefined, minVersion: 'TLSv1.3' };
  const sockets = [];
  const openOne = () => new Promise((resolve) => {
    if (kind === 'ws') {
      const socket = new WebSocket(`wss://127.0.0.1:${port}/`, { ...options, perMessageDeflate: false });
      socket.on('open', resolve);
      socket.on('error', resolve);
      sockets.push({ send: (payload) => { if (socket.readyState === WebSocket.OPEN) socket.send(payload); } });
    } else {
      const socket = tls.connect({ ...options, host: '127.0.0.1', port }, resolve);
      socket.on('data', () => {});
      socket.on('error', resolve);
      sockets.push({ send: (payload) => socket.write(payload) });
    }
  });
  // 50 handshakes at a time: a storm of thousands would time out on two cores.
  for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, openOne));
  process.send({ opened: sockets.length });
  await new Promise((resolve) => process.once('message', resolve));
  const payload = Buffer.alloc(bytes, 0x78);
  for (let round = 0; round < messages; round++) {
    for (let i = 0; i < sockets.length; i++) {
      sockets[i].send(payload);
      if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  process.send({ sent: true });
}

const once = (child, test) => new Promise((resolve) => {
  const listener = (message) => { if (test(message)) { child.off('message', listener); resolve(message); } };
  child.on('message', listener);
});
const settleMs = 3000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function measureOnce(dir, kind, echo, count, messages, bytes, intervalMs) {
  const server = fork(self, ['server', dir, kind, echo ? '1' : '0'], { execArgv: ['--expose-gc'] });
  const read = async () => { server.send('read'); return (await once(server, (m) => m.reading !== undefined)).reading; };
  const { port } = await once(server, (m) => m.port !== undefined);
  const empty = await read();
  const client = fork(self, ['client', dir, kind, String(port), String(count), String(messages), String(bytes), String(intervalMs)]);
  const { opened } = await once(client, (m) => m.opened !== undefined);
  await sleep(settleMs);
  const connected = await read();
  client.send('go');
  await once(client, (m) => m.sent === true);
  await sleep(settleMs);
  const after = await read();
  client.kill();
  server.kill();
  const perConnectionKib = (from, to, key) => (from[key] === null ? null : Number(((to[key] - from[key]) / 1024 / count).toFixed(2)));
  return {
    server: kind, echo, connections: count, opened, held: after.connections, messages, bytes,
    connected_rss_kib: perConnectionKib(empty, connected, 'rssBytes'),
    connected_heap_kib: perConnectionKib(empty, connected, 'heapUsedBytes'),
    traffic_rss_kib: perConnectionKib(connected, after, 'rssBytes'),
    traffic_heap_kib: perConnectionKib(connected, after, 'heapUsedBytes'),
    traffic_array_buffers_kib: perConnectionKib(connected, after, 'arrayBuffersBytes'),
    connected_malloc_in_use_kib: perConnectionKib(empty, connected, 'mallocInUseBytes'),
    traffic_malloc_in_use_kib: perConnectionKib(connected, after, 'mallocInUseBytes'),
    traffic_heap_total_kib: perConnectionKib(connected, after, 'heapTotalBytes'),
  };
}

if (role === 'server') {
  runServer(process.argv[3], process.argv[4], process.argv[5] === '1');
} else if (role === 'client') {
  const [dir, kind, ...numbers] = process.argv.slice(3);
  const [port, count, messages, bytes, intervalMs] = numbers.map(Number);
  await runClient(dir, kind, port, count, messages, bytes, intervalMs);
} else {
  const { values } = parseArgs({
    options: {
      connections: { type: 'string' }, messages: { type: 'string' }, bytes: { type: 'string' }, 'interval-ms': { type: 'string' },
      server: { type: 'string' }, echo: { type: 'string' }, rounds: { type: 'string' },
    },
  });
  const count = Number(values.connections ?? 2000);
  const messageCounts = (values.messages ?? '0,1,5,20,60').split(',').map(Number);
  const bytes = Number(values.bytes ?? 300);
  const intervalMs = Number(values['interval-ms'] ?? 300);
  const kind = values.server ?? 'ws';
  const echo = (values.echo ?? '1') === '1';
  const rounds = Number(values.rounds ?? 1);
  if (!['ws', 'tls'].includes(kind) || !(count > 0) || messageCounts.some((m) => !(m >= 0)) || !(rounds >= 1)) {
    process.stderr.write('usage: node scripts/measure-tls-traffic-rss.mjs [--connections N] [--messages 0,1,5,20,60] [--bytes B] [--interval-ms MS] [--server ws|tls] [--echo 1|0] [--rounds R]\n');
    process.exit(2);
  }
  const dir = makeCertificates();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const messages of messageCounts) console.log(JSON.stringify(await measureOnce(dir, kind, echo, count, messages, bytes, intervalMs)));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
