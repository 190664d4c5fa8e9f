import type { TransitionTable } from './state-machine.js';

/**
 * The lifecycle of one agent-gateway session, seen identically by both ends.
 * connecting: transport up, no challenge yet; authenticating: challenge sent (gateway) or
 * received (agent); ready: AUTH_ACK done, frames flow; closed: orderly end; error: sticky.
 */
export const sessionStates = ['connecting', 'authenticating', 'ready', 'closed', 'error'] as const;
export type SessionState = (typeof sessionStates)[number];

export const sessionEvents = [
  'challenge', // AUTH_CHALLENGE sent or received
  'auth_ok', // AUTH verified and AUTH_ACK sent or received
  'auth_failed', // AUTH_ERROR sent or received
  'frame', // an authenticated application frame (heartbeat, telemetry, command traffic)
  'heartbeat_timeout', // peer silent for longer than the presence bound
  'close', // orderly close by either side
  'transport_lost', // socket gone without a close
] as const;
export type SessionEvent = (typeof sessionEvents)[number];

export const sessionTable: TransitionTable<SessionState, SessionEvent> = {
  name: 'session',
  initial: 'connecting',
  states: sessionStates,
  events: sessionEvents,
  terminal: ['closed'],
  errorState: 'error',
  transitions: {
    connecting: { challenge: 'authenticating', close: 'closed', transport_lost: 'closed' },
    authenticating: { auth_ok: 'ready', auth_failed: 'closed', close: 'closed', transport_lost: 'closed', heartbeat_timeout: 'closed' },
    ready: { frame: 'ready', heartbeat_timeout: 'closed', close: 'closed', transport_lost: 'closed' },
    closed: {},
    error: {},
  },
};
