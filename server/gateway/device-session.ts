import type { TimerHandle } from '../../core/ports/ports.js';
import type { SdcError } from '../../core/errors/index.js';
import type { GatewayConnection } from '../../core/protocol/session/gateway-connection.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { SerialTasks } from './serial-tasks.js';
import { probeStateInitial, type ProbedSession } from './liveness-probe.js';

/** How the core writes to one device's transport (a TLS WebSocket, or the simulator's in-memory pipe). */
export interface DeviceTransport {
  send(bytes: Uint8Array): void;
  close(code: number, reason: string): void;
  /** Sends a WebSocket ping, the liveness probe (liveness-probe.ts); its pong comes back through ConnectionHandle.pong. Absent: not probed. */
  ping?(): void;
}

/**
 * Work queued per session (store writes in frame order); a device that outruns the stores by
 * this much is closed (GATEWAY_OVERLOADED) rather than buffered without end.
 */
export const sessionTasksMax = 256;

/**
 * The gateway's steps for one session, which the session's handle calls (gateway-core.ts). One
 * object per gateway: the handle needs no closures of its own.
 */
export interface SessionDriver {
  receive(session: DeviceSession, bytes: Uint8Array): void;
  transportClosed(session: DeviceSession, code?: string): void;
  refuseFromTransport(session: DeviceSession, error: SdcError, closeCode: number): void;
  pong(session: DeviceSession): void;
  /** A queued task of the session threw (logged): one function for every session, not a closure each. */
  taskFailed(session: DeviceSession, error: unknown): void;
}

/**
 * One device connection: the sans-IO GatewayConnection plus what the driver keeps beside it. It is
 * also the handle the transport calls (gateway-core.ts ConnectionHandle), through the gateway's one
 * SessionDriver: a gateway holds tens of thousands of these, so each costs one object, not a set of
 * closures (docs/benchmarks.md, memory per session).
 */
export class DeviceSession implements ProbedSession {
  readonly tasks: SerialTasks<DeviceSession>;
  /** Normalized, as revocation notices and keys name it. */
  readonly certSerialHex: string;
  /** The certificate's notAfter; the session's one timer also stands for it (gateway-core.ts #armTimer). */
  readonly certNotAfterMs: number | undefined;
  /** The session's one timer: at the earliest of the connection's deadline, the probe's and the certificate's notAfter. */
  timer: TimerHandle | undefined;
  /** When `timer` was meant to fire, so a late firing is seen (late-timer.ts). */
  timerDueMs = 0;
  /** A late timer deferred its judgement and nothing was heard since: the next judgement is final. */
  stallDeferred = false;
  authenticated = false;
  closed = false;
  /** Closed for overload (its work queue was full) or revocation: its queued frames are dropped, not handled. */
  dropQueuedFrames = false;
  /**
   * TELEMETRY_ACK (decision 0004, "Acknowledgements"): the highest seq of this session's telemetry
   * frames appended to the bus so far (-1: none; the tasks run in frame order, so every earlier one
   * is appended too), when the last ack went out, and whether a telemetry frame was lost (its
   * append or its task failed): from then on nothing is acknowledged in this session (an ack is
   * cumulative and would cover the lost frame).
   */
  telemetryAppendedSeq = -1;
  telemetryAckSentMs = Number.NEGATIVE_INFINITY;
  telemetryLost = false;
  sinceMs = 0;
  /** Its place in the order of the gateway's authentications (the larger, the newer); 0 before AUTH. */
  authSeq = 0;
  lastRefreshMs = 0;
  lastRecheckMs = 0;
  /** The liveness probe's state (liveness-probe.ts ProbedSession), as fields of the session, not an entry beside it. */
  probeLastPongMs = probeStateInitial.probeLastPongMs;
  probeSentMs: number | undefined = probeStateInitial.probeSentMs;

  constructor(
    readonly connection: GatewayConnection, readonly transport: DeviceTransport, private readonly driver: SessionDriver,
    certificate: { certSerialHex: string; certNotAfterMs?: number | undefined },
  ) {
    this.tasks = new SerialTasks<DeviceSession>(sessionTasksMax, taskFailed, this);
    this.certSerialHex = normalizedSerial(certificate.certSerialHex);
    this.certNotAfterMs = certificate.certNotAfterMs;
  }

  receive(bytes: Uint8Array): void {
    this.driver.receive(this, bytes);
  }

  transportClosed(code?: string): void {
    this.driver.transportClosed(this, code);
  }

  refuse(error: SdcError, closeCode: number): void {
    this.driver.refuseFromTransport(this, error, closeCode);
  }

  pong(): void {
    this.driver.pong(this);
  }

  taskFailed(error: unknown): void {
    this.driver.taskFailed(this, error);
  }

  get deviceId(): string {
    return this.connection.deviceId;
  }

  get sessionId(): string {
    return this.connection.id;
  }

  /** Stops the session's timer (silence/ACK, probe and certificate expiry in one). */
  cancelTimers(cancel: (timer: TimerHandle) => void): void {
    if (this.timer !== undefined) cancel(this.timer);
    this.timer = undefined;
  }
}

/** Every session's task error handler: the session's driver logs it. */
function taskFailed(error: unknown, session: DeviceSession): void {
  session.taskFailed(error);
}

/** One spelling per serial; a serial that is not hex (never from a verified certificate) is kept lower-cased, and matches no key. */
function normalizedSerial(serialHex: string): string {
  try {
    return normalizeSerialHex(serialHex);
  } catch {
    return serialHex.toLowerCase();
  }
}
