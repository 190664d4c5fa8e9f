import { SdcError } from '../core/errors/index.js';
import type { SignedCommand } from '../core/protocol/messages/command.js';

/**
 * Two checks of a command the agent makes on what it holds itself, beside the delivery checks
 * (core/protocol/signed-command.ts verifyCommand) that run on the gateway's clock.
 * Security review, 2026-12-05 (findings 7 and 8); docs/agent.md.
 */

/**
 * How far past `expires_at` the device's own clock may be before a command is refused whatever
 * the gateway's clock says (finding 8). The agent judges deadlines on the gateway's clock (its own
 * minus the offset AUTH_ACK hands it), and AUTH accepts offsets up to 300 s
 * (clockOffsetLimits.offsetMsMax): a hostile gateway could hand it any offset in that range and
 * so have it take a command up to 5 minutes after the deadline. With this check that is at most
 * 30 s. The cost: a device whose clock runs more than 30 s ahead refuses a command in the last
 * (its offset - 30 s) of the command's life; such a clock raises the gateway's clock_skew alert
 * past 5 s (clockOffsetLimits.alertMs) well before. The kernel's own check has a 300 s grace
 * (COMMAND_EXPIRY_GRACE_MS), so it does not bound this for the agent.
 */
export const ownClockExpiryGraceMs = 30_000;

/**
 * The command's deadline on the device's own clock, with ownClockExpiryGraceMs; undefined while
 * it holds. `code`: COMMAND_EXPIRED at delivery (as verifyCommand), AGENT_COMMAND_EXPIRED just
 * before the command starts (as the agent's own deadline check there).
 */
export function expiredOnOwnClock(command: SignedCommand, deviceNowMs: number, code: 'COMMAND_EXPIRED' | 'AGENT_COMMAND_EXPIRED'): SdcError | undefined {
  const lateMs = deviceNowMs - command.expires_at;
  if (lateMs < ownClockExpiryGraceMs) return undefined;
  return new SdcError(code, `the deadline passed ${lateMs} ms ago on this device's own clock (grace ${ownClockExpiryGraceMs} ms); it was not run`, { commandId: command.id });
}

/**
 * Finding 7: a command issued before the journal's floor (for a journal file created where none
 * was, the time of the first session after, command-journal-file.ts) is refused: what an earlier
 * journal ran is unknown, so such a command could be one that already ran (replayed by a hostile
 * gateway within its TTL). While the floor is pending (no session yet since the file was created)
 * every command is refused. Undefined when the command may be taken.
 */
export function issuedBeforeJournal(command: SignedCommand, issuedFloorMs: number, floorPending = false): SdcError | undefined {
  if (floorPending) {
    return new SdcError(
      'AGENT_COMMAND_BEFORE_JOURNAL',
      "this device's command journal was created anew and its floor is not recorded yet (no session since); issue the command again",
      { commandId: command.id },
    );
  }
  if (command.issued_at >= issuedFloorMs) return undefined;
  return new SdcError(
    'AGENT_COMMAND_BEFORE_JOURNAL',
    `the command was issued at ${command.issued_at}, before this device's command journal was created (${issuedFloorMs}); issue it again`,
    { commandId: command.id },
  );
}
