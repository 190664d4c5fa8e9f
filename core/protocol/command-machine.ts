import type { TransitionTable } from './state-machine.js';

/**
 * The lifecycle of one command, as the control plane records it. Redelivery after an ACK
 * timeout keeps the command in `sent` (attempts are counted beside the state); after the
 * last attempt it is dead-lettered. `rejected` is the device refusing it (bad signature,
 * expired, policy on the device); `expired` is its TTL passing before a result.
 */
export const commandStates = [
  'queued', 'sent', 'ack_received', 'executing',
  'succeeded', 'failed', 'expired', 'rejected', 'dead_lettered',
] as const;
export type CommandState = (typeof commandStates)[number];

export const commandEvents = [
  'deliver', // handed to a connected device (first delivery or a redelivery)
  'ack', // COMMAND_ACK from the device
  'start', // device reports execution started
  'succeed', // COMMAND_RESULT with status succeeded
  'fail', // COMMAND_RESULT with status failed
  'reject', // COMMAND_RESULT with status rejected
  'expire', // TTL passed before a terminal result
  'dead_letter', // delivery attempts exhausted
] as const;
export type CommandEvent = (typeof commandEvents)[number];

export const commandTerminalStates: readonly CommandState[] = ['succeeded', 'failed', 'expired', 'rejected', 'dead_lettered'];

export const commandTable: TransitionTable<CommandState, CommandEvent> = {
  name: 'command',
  initial: 'queued',
  states: commandStates,
  events: commandEvents,
  terminal: commandTerminalStates,
  transitions: {
    queued: { deliver: 'sent', expire: 'expired', dead_letter: 'dead_lettered' },
    // A result may overtake its ACK on a lossy link; the result is authoritative.
    sent: { deliver: 'sent', ack: 'ack_received', succeed: 'succeeded', fail: 'failed', reject: 'rejected', expire: 'expired', dead_letter: 'dead_lettered' },
    ack_received: { start: 'executing', succeed: 'succeeded', fail: 'failed', reject: 'rejected', expire: 'expired' },
    executing: { succeed: 'succeeded', fail: 'failed', expire: 'expired' },
    succeeded: {},
    failed: {},
    expired: {},
    rejected: {},
    dead_lettered: {},
  },
};
