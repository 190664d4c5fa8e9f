import type { TransitionTable } from './state-machine.js';

/**
 * The lifecycle of one command, as the control plane records it. Redelivery after an ACK
 * timeout keeps the command in `sent` (attempts are counted beside the state); after the
 * last attempt it is dead-lettered. A command the policy allows only with approvals starts in
 * `pending_approval` (not signed, not delivered) and is `release`d to `queued` once they are in.
 * `rejected` is the device refusing it (bad signature, expired, policy on the device) or an
 * approver rejecting it while pending; `expired` is its TTL passing before it ever left the control
 * plane (waiting for approvals included); `timed_out` is its TTL passing without a result after it left (it may have run).
 * `canceled` is the control plane ending an unfinished command because its device was revoked: no
 * session will deliver it again, and no result of the device is accepted any more.
 *
 * A terminal state says what is known about execution on the device (`commandExecution`, the
 * table in docs/protocol.md). Two terminal states are entered without knowing it, `timed_out`
 * and `dead_lettered`; a late result signed by the device still refines them, once, to what
 * it reports (`succeeded_late`, `failed_late`, `rejected`).
 */
export const commandStates = [
  'queued', 'sent', 'ack_received', 'executing',
  'succeeded', 'failed', 'expired', 'rejected', 'dead_lettered',
  'timed_out', 'succeeded_late', 'failed_late',
  // Appended, not inserted: the model tier and recorded outputs index states by position.
  'pending_approval',
  'canceled',
] as const;
export type CommandState = (typeof commandStates)[number];

export const commandEvents = [
  'deliver', // handed to a connected device (first delivery or a redelivery)
  'ack', // COMMAND_ACK from the device
  'start', // device reports execution started
  'succeed', // COMMAND_RESULT with status succeeded
  'fail', // COMMAND_RESULT with status failed
  'reject', // COMMAND_RESULT with status rejected: the device did not run it
  'expire', // TTL passed and no gateway ever held the command: no device can have it
  'time_out', // TTL passed without a result after the command left the control plane
  'dead_letter', // delivery attempts exhausted without an ACK (or the gateway refused the command)
  'release', // a pending command's approvals satisfy the policy: it is signed (approvals embedded) and queued
  'approval_reject', // an approver rejected a pending command: it never leaves the control plane
  'cancel', // the control plane ends an unfinished command: its device was revoked (API_DEVICE_REVOKED)
] as const;
export type CommandEvent = (typeof commandEvents)[number];

export const commandTerminalStates: readonly CommandState[] = [
  'succeeded', 'failed', 'expired', 'rejected', 'dead_lettered', 'timed_out', 'succeeded_late', 'failed_late', 'canceled',
];

/** Terminal states entered without knowing whether the device ran the command; a late result refines them. */
export const commandRefinableStates: readonly CommandState[] = ['dead_lettered', 'timed_out'];

/**
 * What a terminal state guarantees about execution on the device:
 * - `not_executed`: the command never ran and never will (no device got it, or the device
 *   said in a signed result that it refused it; a refused command id is never run later);
 * - `started`: the device started it (`failed` may have failed before or after any effect);
 * - `unknown`: the device may have run it; a late signed result refines the state (`canceled`
 *   excepted: its device is revoked, and the control plane refuses every frame it still sends).
 */
export type ExecutionKnowledge = 'not_executed' | 'started' | 'unknown';

export const commandExecution: Readonly<Record<CommandState, ExecutionKnowledge | 'pending'>> = {
  pending_approval: 'pending', queued: 'pending', sent: 'pending', ack_received: 'pending', executing: 'pending',
  succeeded: 'started', failed: 'started', succeeded_late: 'started', failed_late: 'started',
  expired: 'not_executed', rejected: 'not_executed',
  timed_out: 'unknown', dead_lettered: 'unknown', canceled: 'unknown',
};

/** The states in which the command is guaranteed never to have run on the device. */
export const commandNotExecutedStates: readonly CommandState[] = commandStates.filter((s) => commandExecution[s] === 'not_executed');

// A late result after timed_out/dead_lettered is the device's signed word on what happened.
const lateResults = { succeed: 'succeeded_late', fail: 'failed_late', reject: 'rejected' } as const;

export const commandTable: TransitionTable<CommandState, CommandEvent> = {
  name: 'command',
  initial: 'queued',
  states: commandStates,
  events: commandEvents,
  terminal: commandTerminalStates,
  refinable: commandRefinableStates,
  transitions: {
    // time_out from queued: the command was appended to a gateway's stream, but no delivery was reported yet.
    queued: { deliver: 'sent', expire: 'expired', time_out: 'timed_out', dead_letter: 'dead_lettered', cancel: 'canceled' },
    // A result may overtake its ACK on a lossy link; the result is authoritative.
    sent: { deliver: 'sent', ack: 'ack_received', succeed: 'succeeded', fail: 'failed', reject: 'rejected', time_out: 'timed_out', dead_letter: 'dead_lettered', cancel: 'canceled' },
    ack_received: { start: 'executing', succeed: 'succeeded', fail: 'failed', reject: 'rejected', time_out: 'timed_out', cancel: 'canceled' },
    executing: { succeed: 'succeeded', fail: 'failed', time_out: 'timed_out', cancel: 'canceled' },
    // Not signed and not delivered while it waits; its TTL passing ends it like a queued command that never left.
    pending_approval: { release: 'queued', approval_reject: 'rejected', expire: 'expired' },
    succeeded: {},
    failed: {},
    expired: {},
    rejected: {},
    dead_lettered: { ...lateResults },
    timed_out: { ...lateResults },
    succeeded_late: {},
    failed_late: {},
    canceled: {},
  },
};
