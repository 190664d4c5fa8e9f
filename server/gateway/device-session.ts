import type { TimerHandle } from '../../core/ports/ports.js';
import type { GatewayConnection } from '../../core/protocol/session/gateway-connection.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import type { DeadlineTimer } from './deadline-timer.js';
import { SerialTasks } from './serial-tasks.js';

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
const sessionTasksMax = 256;

/** One device connection: the sans-IO GatewayConnection plus what the driver keeps beside it. */
export class DeviceSession {
  readonly tasks: SerialTasks;
  /** Normalized, as revocation notices and keys name it. */
  readonly certSerialHex: string;
  timer: TimerHandle | undefined;
  expiry: DeadlineTimer | undefined;
  authenticated = false;
  closed = false;
  /** Closed for overload (its work queue was full) or revocation: its queued frames are dropped, not handled. */
  dropQueuedFrames = false;
  sinceMs = 0;
  lastRefreshMs = 0;
  lastRecheckMs = 0;

  constructor(readonly connection: GatewayConnection, readonly transport: DeviceTransport, certSerialHex: string, onTaskError: (error: unknown) => void) {
    this.tasks = new SerialTasks(sessionTasksMax, onTaskError);
    this.certSerialHex = normalizedSerial(certSerialHex);
  }

  get deviceId(): string {
    return this.connection.deviceId;
  }

  get sessionId(): string {
    return this.connection.id;
  }

  /** Stops the session's own timers (silence/ACK and certificate expiry). */
  cancelTimers(cancel: (timer: TimerHandle) => void): void {
    if (this.timer !== undefined) cancel(this.timer);
    this.timer = undefined;
    this.expiry?.cancel();
    this.expiry = undefined;
  }
}

/** One spelling per serial; a serial that is not hex (never from a verified certificate) is kept lower-cased, and matches no key. */
function normalizedSerial(serialHex: string): string {
  try {
    return normalizeSerialHex(serialHex);
  } catch {
    return serialHex.toLowerCase();
  }
}
