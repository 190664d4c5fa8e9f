/**
 * The kernel's replay guard for signed commands: the highest device_seq executed plus a bitmap of
 * the COMMAND_REPLAY_WINDOW seqs below it (IPsec-style anti-replay). Fixed memory whatever the
 * traffic. A window rather than a strict "greater than" because the agent legitimately runs a
 * lower seq that arrives late after a gateway failover (agent-core: "a lower seq that has not run
 * still runs (once)"); a seq that far behind is refused, which bounds what must be remembered.
 * The native library keeps the same window (sdc_command.c).
 */
import { COMMAND_REPLAY_WINDOW } from '../generated/contract.js';

const windowBits = BigInt(COMMAND_REPLAY_WINDOW);
const mask = (1n << windowBits) - 1n;

export class CommandReplayWindow {
  private highest = 0n;
  /** Bit i set: seq (highest - i) was executed. */
  private bits = 0n;

  /** True when `seq` may run: above the highest, or inside the window and not yet seen. */
  fresh(seq: bigint): boolean {
    if (seq > this.highest) return true;
    const distance = this.highest - seq;
    if (distance >= windowBits) return false;
    return ((this.bits >> distance) & 1n) === 0n;
  }

  /** Records `seq` as executed; the caller checked fresh(seq). */
  mark(seq: bigint): void {
    if (seq > this.highest) {
      const shift = seq - this.highest;
      this.bits = shift >= windowBits ? 0n : (this.bits << shift) & mask;
      this.highest = seq;
      this.bits |= 1n;
      return;
    }
    this.bits |= 1n << (this.highest - seq);
  }
}
