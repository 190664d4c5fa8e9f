import { readFile } from 'node:fs/promises';
import WebSocket from 'ws';
import { agentPaths } from '../agent/state/agent-state.js';
import { chunks } from '../sim/real/messages.js';
import type { BareClientReport, BareClientRequest } from './connections-messages.js';

/**
 * A bare client child of `sdc bench connections|reconnect`: one mutual-TLS WebSocket per agent
 * directory, with the agent's certificate and key and the agents' TLS options, and nothing on
 * it: the baseline's idle connections, and the baseline's re-handshake storm (the same start
 * jitter and backoff as the agents' driver, agent/ws-transport.ts). On request it then sends
 * messages on every connection (`traffic`), for the baseline with traffic.
 */

const statusIntervalMs = 500;
const backoffBaseMs = 500;

const send = (report: BareClientReport): void => {
  if (process.connected) process.send?.(report);
};

/** Each directory's client certificate (with its chain) and key, read when the directories arrive, so that no file read is timed. */
const credentials: Array<{ cert: string; key: string }> = [];
/** One directory at a time: thousands of reads at once would run into the open-files cap. */
let loaded: Promise<void> = Promise.resolve();
const sockets = new Set<WebSocket>();
let failures = 0;
let closing = false;
let statusTimer: NodeJS.Timeout | undefined;

function openAll(request: Extract<BareClientRequest, { type: 'open' }>): Promise<void> {
  const startedMs = Date.now();
  const afterMs: number[] = [];
  let pending = credentials.length;
  return new Promise<void>((resolve) => {
    if (pending === 0) resolve();
    for (const credential of credentials) {
      let attempt = 0;
      const connect = () => {
        if (closing) return;
        const { cert, key } = credential;
        const ws = new WebSocket(request.url, { cert, key, ca: request.caPem, minVersion: 'TLSv1.3', perMessageDeflate: false, handshakeTimeout: 15_000 });
        let opened = false;
        ws.on('open', () => {
          opened = true;
          sockets.add(ws);
          afterMs.push(Date.now() - startedMs);
          pending -= 1;
          if (pending === 0) resolve();
        });
        ws.on('error', () => undefined);
        ws.on('close', () => {
          sockets.delete(ws);
          if (opened || closing) return;
          failures += 1;
          const ceilingMs = Math.min(request.backoffMaxMs, backoffBaseMs * 2 ** Math.min(attempt, 30));
          attempt += 1;
          setTimeout(() => connect(), Math.floor(Math.random() * (ceilingMs + 1)));
        });
      };
      setTimeout(() => connect(), Math.floor(Math.random() * (request.jitterMs + 1)));
    }
  }).then(() => {
    for (const part of chunks(afterMs)) send({ type: 'opened', afterMs: part });
    send({ type: 'openedDone' });
  });
}

/** Sends between yields to the event loop, so that the echoes are read while a round is being sent. */
const sendsPerTurn = 500;

async function sendTraffic(request: Extract<BareClientRequest, { type: 'traffic' }>): Promise<void> {
  const payload = Buffer.alloc(request.bytes, 0x78);
  let sent = 0;
  for (let round = 0; round < request.messages && !closing; round++) {
    let sinceTurn = 0;
    for (const ws of sockets) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      ws.send(payload);
      sent += 1;
      if (++sinceTurn === sendsPerTurn) {
        sinceTurn = 0;
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    await new Promise((resolve) => setTimeout(resolve, request.intervalMs));
  }
  send({ type: 'trafficDone', sent });
}

process.on('message', (request: BareClientRequest) => {
  if (request.type === 'dirs') {
    const { dirs } = request;
    loaded = loaded.then(async () => {
      for (const dir of dirs) {
        const paths = agentPaths(dir);
        const [cert, chain, key] = await Promise.all([readFile(paths.deviceCert, 'utf8'), readFile(paths.chain, 'utf8'), readFile(paths.deviceKey, 'utf8')]);
        credentials.push({ cert: cert + chain, key });
      }
    });
  } else if (request.type === 'open') {
    statusTimer ??= setInterval(() => send({ type: 'status', open: sockets.size, failures }), statusIntervalMs);
    loaded.then(() => openAll(request)).catch((error: unknown) => send({ type: 'failed', message: error instanceof Error ? error.message : String(error) }));
  } else if (request.type === 'traffic') {
    sendTraffic(request).catch((error: unknown) => send({ type: 'failed', message: error instanceof Error ? error.message : String(error) }));
  } else {
    closing = true;
    if (statusTimer) clearInterval(statusTimer);
    for (const ws of sockets) ws.terminate();
    send({ type: 'closed' });
    process.disconnect?.();
  }
});
process.on('disconnect', () => process.exit(0));
