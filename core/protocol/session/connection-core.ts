import { SdcError, type ErrorCode } from '../../errors/index.js';
import { resolveProtocolLimits, type ProtocolLimits } from '../limits.js';
import type { MessageBody, MessageType } from '../messages/catalog.js';
import { ReplayGuard, type ReplayGuardOptions } from '../replay-guard.js';
import { sessionTable, type SessionEvent, type SessionState } from '../session-machine.js';
import { StateMachine } from '../state-machine.js';
import { checkedMessage, decodeAndVerifyFrame, encodeDecodedBody, encodeMessage, type DecodedMessage, type FrameAddress, type FrameSigner } from './codec.js';
import type { SessionMacKeys, SessionMacOptions } from './session-mac.js';

/** What either end reports to its driver after `receive` or `handleTimeout`. */
export type ConnectionEvent =
  | { kind: 'message'; message: DecodedMessage }
  | { kind: 'refused'; error: SdcError }
  | { kind: 'closed'; reason: string; code?: ErrorCode };

export interface ConnectionCoreOptions {
  deviceId: string;
  signer: FrameSigner;
  /** Prefix of the ids of frames this side sends ('g' gateway, 'a' agent), so ids never collide. */
  frameIdPrefix: string;
  limits?: Partial<ProtocolLimits>;
  replay?: Partial<ReplayGuardOptions>;
  /** Refused frames tolerated in one session before closing it: a peer that keeps sending junk is cut off. */
  refusalsMax?: number;
  /** Frames waiting for the driver to take; the driver drains after every call, so this is a bug guard. */
  outgoingFramesMax?: number;
  /** Offer (agent) or accept (gateway) the session MAC for HEARTBEAT and TELEMETRY (session-mac.ts); absent: every frame is signed. */
  sessionMac?: SessionMacOptions;
}

/**
 * The part both ends share (h11's Connection): a session state machine, a replay guard for the
 * peer's frames, this side's sequence numbers, and an outgoing frame queue the driver drains.
 * No sockets and no clock: every call takes `nowMs`.
 */
export abstract class ConnectionCore {
  /**
   * No transition history: nothing reads a session's, and it cost every session a gateway holds
   * up to 32 records (an object, a heap number and a slot each, about 2.3 KB once full; 8.7 records
   * per session after the 65 s hold of `sdc bench connections`, docs/benchmarks.md).
   */
  protected readonly machine = new StateMachine(sessionTable, { historyEntriesMax: 0 });
  protected readonly replay: ReplayGuard;
  protected sessionId = '';
  protected lastHeardMs = 0;
  /** Set once both sides' X25519 keys are known (after AUTH_ACK); from then on sessionMacTypes carry the MAC. */
  protected macKeys: SessionMacKeys | undefined;
  readonly #outgoing: Uint8Array[] = [];
  // The options this side reads, as fields: a copy of the options object (with the subclass's
  // fields spread in) cost every gateway session a plain object and its property array
  // (docs/benchmarks.md, 2026-12-04 "memory per session").
  readonly #deviceId: string;
  readonly #signer: FrameSigner;
  readonly #frameIdPrefix: string;
  readonly #limits: ProtocolLimits;
  readonly #sessionMac: SessionMacOptions | undefined;
  readonly #refusalsMax: number;
  readonly #outgoingFramesMax: number;
  #nextSeq = 0;
  #refusals = 0;

  protected constructor(options: ConnectionCoreOptions) {
    this.#deviceId = options.deviceId;
    this.#signer = options.signer;
    this.#frameIdPrefix = options.frameIdPrefix;
    // Limits resolved (and checked) once here: every received frame's parse reuses the frozen result.
    this.#limits = resolveProtocolLimits(options.limits);
    this.#sessionMac = options.sessionMac;
    this.#refusalsMax = options.refusalsMax ?? 8;
    this.#outgoingFramesMax = options.outgoingFramesMax ?? 1024;
    this.replay = new ReplayGuard({ sessionsMax: 1, ...options.replay });
  }

  get state(): SessionState {
    return this.machine.state;
  }

  get id(): string {
    return this.sessionId;
  }

  get deviceId(): string {
    return this.#deviceId;
  }

  protected get signerProvider() {
    return this.#signer.provider;
  }

  /** True once HEARTBEAT and TELEMETRY carry the session MAC. */
  get sessionMacAgreed(): boolean {
    return this.macKeys !== undefined;
  }

  protected get sessionMacOptions(): SessionMacOptions | undefined {
    return this.#sessionMac;
  }

  get isOpen(): boolean {
    return this.machine.state !== 'closed' && this.machine.state !== 'error';
  }

  /** Frames to write to the transport, in order. */
  takeOutgoing(): Uint8Array[] {
    return this.#outgoing.splice(0, this.#outgoing.length);
  }

  /** Orderly close by this side's driver. */
  close(reason: string, nowMs: number): ConnectionEvent[] {
    if (!this.isOpen) return [];
    this.machine.apply('close', nowMs);
    return [{ kind: 'closed', reason }];
  }

  /**
   * The driver refuses something it could not hand over as a frame (one over the transport's
   * size bound, which the transport drops unread): the peer gets the typed refusal (AUTH_ERROR
   * before the session is ready, ERROR after) and the session ends, so the close that follows
   * is never the only word the peer gets.
   */
  refuseAndClose(error: SdcError, nowMs: number): ConnectionEvent[] {
    if (!this.isOpen) return [];
    if (this.machine.state !== 'ready') return this.refuse(error, nowMs);
    this.sendFrame('ERROR', { code: error.code, message: error.message.slice(0, 512) }, nowMs);
    this.machine.apply('close', nowMs);
    return [{ kind: 'refused', error }, { kind: 'closed', reason: error.message, code: error.code }];
  }

  /** The transport went away. */
  transportLost(nowMs: number): ConnectionEvent[] {
    if (!this.isOpen) return [];
    this.machine.apply('transport_lost', nowMs);
    return [{ kind: 'closed', reason: 'transport lost' }];
  }

  protected sendFrame<T extends MessageType>(type: T, body: MessageBody<T>, nowMs: number): void {
    const address = this.#nextAddress(nowMs);
    this.#outgoing.push(encodeMessage(type, body, address, this.#signer, this.macKeys).bytes);
    this.#nextSeq += 1;
  }

  /** Sends back a message just received, with its body as received (checkBody validated it; the HEARTBEAT echo). */
  protected echoFrame(message: DecodedMessage, nowMs: number): void {
    const address = this.#nextAddress(nowMs);
    this.#outgoing.push(encodeDecodedBody(message, address, this.#signer, this.macKeys).bytes);
    this.#nextSeq += 1;
  }

  /**
   * The next frame's address. Its seq is taken (the caller adds 1) only once the frame is encoded:
   * a body that fails to encode throws and leaves no gap in the seqs the peer sees.
   */
  #nextAddress(nowMs: number): FrameAddress {
    if (this.#outgoing.length >= this.#outgoingFramesMax) {
      throw new SdcError('PROTO_INVALID_ARGUMENT', 'outgoing frames not drained by the driver');
    }
    const seq = this.#nextSeq;
    return { id: `${this.#frameIdPrefix}${seq}`, deviceId: this.#deviceId, sessionId: this.sessionId, seq, ts: nowMs };
  }

  /** The seq of the frame this side sent last (-1 before any): what a frame just sent by sendFrame was numbered. */
  protected get lastSentSeq(): number {
    return this.#nextSeq - 1;
  }

  protected requireReady(type: string): void {
    if (this.machine.state !== 'ready') throw new SdcError('PROTO_ILLEGAL_TRANSITION', `cannot send ${type} in state ${this.machine.state}`);
  }

  /**
   * Authenticates a frame of the current session and checks it against the replay guard.
   * `localTsOf` turns the frame's `ts` into this side's clock before the time check: the
   * gateway's AUTH arrives stamped by a device clock it has not measured yet. It may throw
   * (a typed error) to refuse the frame; it runs only after the signature verified.
   */
  protected authenticate(bytes: Uint8Array, nowMs: number, resolveKey: (kid: string) => Uint8Array | undefined, localTsOf?: (ts: number) => number): DecodedMessage {
    // Every received frame passes here: its options as one literal (no spread, no default
    // closure), its message built once with the bytes and text (checkedMessage), not spread into
    // a second object (issue 17: about 2 us of this function's own CPU per frame, by a profile).
    const macKeys = this.macKeys;
    const { envelope, text, canonical } = decodeAndVerifyFrame(macKeys === undefined
      ? { bytes, limits: this.#limits, expectDeviceId: this.#deviceId, expectSessionId: this.sessionId, resolveKey, provider: this.#signer.provider }
      : { bytes, limits: this.#limits, expectDeviceId: this.#deviceId, expectSessionId: this.sessionId, resolveKey, provider: this.#signer.provider, mac: macKeys });
    this.replay.accept({ sessionId: this.sessionId, seq: envelope.seq, ts: localTsOf === undefined ? envelope.ts : localTsOf(envelope.ts) }, nowMs);
    const message = checkedMessage(envelope, bytes, text, canonical);
    this.lastHeardMs = nowMs;
    return message;
  }

  protected applyEvent(event: SessionEvent, nowMs: number): void {
    this.machine.apply(event, nowMs);
  }

  /**
   * A refused frame. Before the session is ready, a refusal ends it (the side sends its
   * auth-failure frame first, via `onRefusedBeforeReady`). After, the peer gets an ERROR frame
   * and the session survives until `refusalsMax` refusals.
   */
  protected refuse(error: unknown, nowMs: number, refId?: string): ConnectionEvent[] {
    const typed = SdcError.is(error) ? error : new SdcError('PROTO_INVALID_ARGUMENT', `internal error: ${String(error)}`);
    const events: ConnectionEvent[] = [{ kind: 'refused', error: typed }];
    if (this.machine.state !== 'ready') {
      this.onRefusedBeforeReady(typed, nowMs);
      if (this.isOpen) this.machine.apply(this.machine.can('auth_failed') ? 'auth_failed' : 'close', nowMs);
      events.push({ kind: 'closed', reason: 'refused before the session was ready', code: typed.code });
      return events;
    }
    this.#refusals += 1;
    const ref = refId ?? (typeof typed.details.refId === 'string' ? typed.details.refId : undefined);
    this.sendFrame('ERROR', { code: typed.code, message: typed.message.slice(0, 512), ...(ref && /^[A-Za-z0-9_-]{1,64}$/.test(ref) ? { ref_id: ref } : {}) }, nowMs);
    if (this.#refusals > this.#refusalsMax) {
      this.machine.apply('close', nowMs);
      events.push({ kind: 'closed', reason: `more than ${this.#refusalsMax} refused frames`, code: typed.code });
    }
    return events;
  }

  /** Sends the side's auth-failure frame, if it has one. */
  protected abstract onRefusedBeforeReady(error: SdcError, nowMs: number): void;
}
