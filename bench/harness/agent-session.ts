import { createHash } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import WebSocket from 'ws';
import { defaultProtocolLimits } from '../../core/protocol/limits.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { AgentConnection, type AgentEvent } from '../../core/protocol/session/agent-connection.js';
import type { FrameSigner } from '../../core/protocol/session/codec.js';
import type { MetricSet } from './thresholds.js';

/**
 * One iteration of the agent scenario (bench/k6/agent.js's agentSession) in Node: a device
 * session over mutual TLS, AUTH_CHALLENGE, AUTH, AUTH_ACK, then heartbeats and chained telemetry
 * at the scenario's intervals, every COMMAND_DELIVERY answered with COMMAND_ACK received,
 * COMMAND_ACK executing and a signed COMMAND_RESULT; closed by the agent after the session time.
 *
 * The frames are made by the repo's own agent session layer (core/protocol/session/agent-connection.ts:
 * canonical JSON, Ed25519 signatures, sequence numbers, the gateway's clock offset, and the
 * gateway's frames verified against the pinned keys). Like the k6 script it offers no
 * `x25519_pub`, so there is no session MAC and every frame is Ed25519-signed: the gateway does the
 * same work per frame under both. Like the script, it does not verify the delivered command's
 * signature nor run it (the real agent does; the gateway's side is the same).
 */

/** One enrolled device as a VU uses it. */
export interface AgentVuIdentity {
  readonly deviceId: string;
  readonly signer: FrameSigner;
  readonly resolveGatewayKey: (kid: string) => Uint8Array | undefined;
  /** wss://host:port/v1/agent */
  readonly url: string;
  /** The client certificate (device then chain) and key, and the CAs trusted for the gateway, as one context made once per device. */
  readonly secureContext: () => SecureContext;
}

export function secureContextOnce(options: { certPem: string; keyPem: string; caPem: string }): () => SecureContext {
  let context: SecureContext | undefined;
  return () => (context ??= createSecureContext({ cert: options.certPem, key: options.keyPem, ca: options.caPem, minVersion: 'TLSv1.3' }));
}

export interface AgentSessionSettings {
  readonly sessionMs: number;
  readonly heartbeatIntervalMs: number;
  readonly telemetryIntervalMs: number;
  /** A TLS + WebSocket handshake that takes longer is abandoned (the iteration ends, not authenticated). */
  readonly connectTimeoutMs: number;
}

/** What the run keeps besides the metrics: refusals by code, why sessions ended before their time. */
export interface AgentSessionTally {
  /** ERROR frames from the gateway (sdc_frames_refused), by code. */
  readonly refusedByCode: Record<string, number>;
  /** Gateway frames this side's session layer refused (a bad signature, a stale seq), by code. */
  readonly clientRefusalsByCode: Record<string, number>;
  /** Sessions that ended without AUTH_ACK, by reason (connect error, AUTH_ERROR code, closed). */
  readonly notAuthenticatedByReason: Record<string, number>;
  /** The devices with an authenticated session now (the in-process run sends its commands to them). */
  readonly ready: Set<string>;
}

export function newAgentSessionTally(): AgentSessionTally {
  return { refusedByCode: {}, clientRefusalsByCode: {}, notAuthenticatedByReason: {}, ready: new Set() };
}

/** Distinct codes kept per tally map: a gateway sending junk codes must not grow it without bound. */
const tallyCodesMax = 64;
/** Command ids one session remembers as answered; a session lives minutes and gets a few commands. */
const answeredIdsMax = 10_000;
/** Bytes queued in the socket beyond which the session is dropped, as the agent's driver does (ws-transport.ts). */
const socketBufferedBytesMax = 1024 * 1024;
/** A gateway that does not answer the close handshake is cut off after this. */
const closeWaitMs = 2_000;

function bump(map: Record<string, number>, key: string): void {
  if (map[key] === undefined && Object.keys(map).length >= tallyCodesMax) key = 'other';
  map[key] = (map[key] ?? 0) + 1;
}

const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Telemetry values as the k6 script sends them: the frame's size and work, not a host's readings. */
const telemetryMetrics: MessageBody<'TELEMETRY'>['metrics'] = { cpu_pct: 10, mem_pct: 40, disk_pct: 50, net_rx_bytes_per_sec: 1024, net_tx_bytes_per_sec: 512, process_count: 100 };

/**
 * Runs one session to its end: the session time, the gateway closing it, a failure, or `signal`
 * (the executor interrupting the iteration). Resolves when the socket has closed.
 */
export function runAgentSession(identity: AgentVuIdentity, settings: AgentSessionSettings, metrics: MetricSet, tally: AgentSessionTally, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const openedMs = performance.now();
    const connection = new AgentConnection({ deviceId: identity.deviceId, signer: identity.signer, resolveGatewayKey: identity.resolveGatewayKey, agentVersion: 'sdc-bench-agents/1', lastCommandSeq: 0 });
    const timers: NodeJS.Timeout[] = [];
    let connectedMs: number | undefined;
    let authenticated = false;
    let endReason: string | undefined;
    let telemetryHash: string | undefined;
    // Delivery is at least once: a command whose ACK came late (a busy machine) is delivered again and
    // answered again, counted apart so sdc_commands_answered counts commands (as bench/k6/agent.js).
    const answeredIds = new Set<string>();
    const ws = new WebSocket(identity.url, {
      ...({ secureContext: identity.secureContext() } as WebSocket.ClientOptions),
      maxPayload: defaultProtocolLimits.frameBytesMax, handshakeTimeout: settings.connectTimeoutMs, perMessageDeflate: false,
    });
    ws.binaryType = 'nodebuffer';

    const write = (frames: Uint8Array[]) => {
      for (const frame of frames) {
        if (ws.readyState !== WebSocket.OPEN) return;
        if (ws.bufferedAmount > socketBufferedBytesMax) {
          end('gateway not reading', true);
          return;
        }
        ws.send(frame);
        metrics.add('ws_msgs_sent', 1);
      }
    };
    /** One frame from the session layer; a refusal to build it (a bug here) ends the session. */
    const send = (build: (now: number) => void) => {
      if (!authenticated || ws.readyState !== WebSocket.OPEN) return;
      try {
        build(Date.now());
      } catch {
        end('frame not built', true);
        return;
      }
      write(connection.takeOutgoing());
    };
    const gatewayNow = () => Date.now() - connection.clockOffsetMs;
    const end = (reason: string, terminate = false) => {
      endReason ??= reason;
      for (const timer of timers.splice(0)) clearTimeout(timer);
      connection.close(reason, Date.now());
      if (ws.readyState === WebSocket.CLOSED) return;
      if (terminate || ws.readyState === WebSocket.CONNECTING) {
        ws.terminate();
        return;
      }
      ws.close(1000);
      const cutOff = setTimeout(() => ws.terminate(), closeWaitMs);
      ws.once('close', () => clearTimeout(cutOff));
    };

    const onReady = () => {
      authenticated = true;
      metrics.add('sdc_auth_ms', performance.now() - openedMs);
      metrics.add('sdc_auth_ok', true);
      tally.ready.add(identity.deviceId);
      const startedMs = Date.now();
      timers.push(setInterval(() => send((now) => connection.sendHeartbeat({ uptime_ms: now - startedMs, queue_depth: 0 }, now)), settings.heartbeatIntervalMs));
      timers.push(setInterval(() => {
        if (!authenticated || ws.readyState !== WebSocket.OPEN) return;
        const body: MessageBody<'TELEMETRY'> = { sampled_at: gatewayNow(), metrics: telemetryMetrics, ...(telemetryHash === undefined ? {} : { prev_hash: telemetryHash }) };
        try {
          connection.sendTelemetry(body, Date.now());
        } catch {
          end('frame not built', true);
          return;
        }
        const frames = connection.takeOutgoing();
        // The chain names the frame's bytes as sent (the gateway checks it: telemetry-chain.ts).
        const sent = frames[frames.length - 1];
        if (sent !== undefined) telemetryHash = sha256Hex(sent);
        write(frames);
      }, settings.telemetryIntervalMs));
    };

    const onMessage = (type: string, body: unknown) => {
      if (type === 'COMMAND_DELIVERY') {
        const { command } = body as MessageBody<'COMMAND_DELIVERY'>;
        for (const stage of ['received', 'executing'] as const) send((now) => connection.sendCommandAck({ command_id: command.id, device_seq: command.device_seq, stage }, now));
        send((now) => connection.sendCommandResult({ command_id: command.id, device_seq: command.device_seq, status: 'succeeded', output: {}, finished_at: gatewayNow() }, now));
        if (answeredIds.has(command.id)) {
          metrics.add('sdc_commands_redelivered', 1);
        } else {
          if (answeredIds.size >= answeredIdsMax) answeredIds.clear();
          answeredIds.add(command.id);
          metrics.add('sdc_commands_answered', 1);
        }
      } else if (type === 'ERROR') {
        metrics.add('sdc_frames_refused', 1);
        bump(tally.refusedByCode, String((body as MessageBody<'ERROR'>).code));
      }
    };

    const handle = (events: AgentEvent[]) => {
      for (const event of events) {
        switch (event.kind) {
          case 'ready': onReady(); break;
          case 'auth_error': endReason ??= `AUTH_ERROR ${event.code}`; break;
          case 'refused': bump(tally.clientRefusalsByCode, event.error.code); break;
          case 'closed': end(event.reason); break;
          case 'message': onMessage(event.message.type, event.message.body); break;
        }
      }
    };

    ws.on('open', () => {
      connectedMs = performance.now();
      metrics.add('ws_connecting', connectedMs - openedMs);
      metrics.add('ws_sessions', 1);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      metrics.add('ws_msgs_received', 1);
      const bytes = isBinary ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new TextEncoder().encode(data.toString('utf8'));
      let events: AgentEvent[];
      try {
        events = connection.receive(bytes, Date.now());
      } catch {
        end('session layer failed', true);
        return;
      }
      // AUTH (and any refusal the layer answers with) goes out before the events are acted on.
      write(connection.takeOutgoing());
      handle(events);
    });
    ws.on('error', (error) => { endReason ??= `connect: ${(error as NodeJS.ErrnoException).code ?? error.message}`; });
    ws.on('close', () => {
      for (const timer of timers.splice(0)) clearTimeout(timer);
      tally.ready.delete(identity.deviceId);
      if (connectedMs !== undefined) metrics.add('ws_session_duration', performance.now() - connectedMs);
      // Interrupted by the executor before AUTH_ACK: not a failed authentication, just cut short.
      if (!authenticated && !signal.aborted) {
        metrics.add('sdc_auth_ok', false);
        bump(tally.notAuthenticatedByReason, endReason ?? 'closed before AUTH_ACK');
      }
      resolve();
    });
    // From the connection's start, as the script's setTimeout right after `new WebSocket`: a slow handshake shortens the session.
    timers.push(setTimeout(() => end('session time over'), settings.sessionMs));
    if (signal.aborted) end('interrupted');
    else signal.addEventListener('abort', () => end('interrupted'), { once: true });
  });
}
