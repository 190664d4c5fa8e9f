/**
 * Who is at fault for a refusal (after h11's LocalProtocolError / RemoteProtocolError):
 * - `remote`: the peer sent something we refuse (bad frame, bad token, replay). Tell the peer.
 * - `local`: our own side failed (store down, misconfiguration, bug). Do not blame the peer.
 */
export type Fault = 'local' | 'remote';

/** The fixed facts about one error code. A code's spec never changes meaning once published. */
export interface ErrorSpec {
  readonly fault: Fault;
  /** HTTP status hint; also used by the gateway to choose a close reason. */
  readonly status: number;
  /** One-line description for docs and default messages. */
  readonly summary: string;
}

export type ErrorTable = Readonly<Record<string, ErrorSpec>>;

/** Declares a domain's codes while keeping their literal keys for the `ErrorCode` union. */
export function defineErrors<const T extends ErrorTable>(table: T): T {
  return table;
}
