import type { CommandState } from '../../core/protocol/command-machine.js';
import { openLiveStream } from '../../runtime/sse-client.js';
import type { OperatorApi } from './operator-api.js';

/** Most commands one run sends (command-schedule.ts); the live states are bounded by it too. */
export const commandsMax = 1_000_000;

/** Each command's latest state as the live stream told it, and whether the stream is gone. */
export interface LiveStates {
  get(commandId: string): CommandState | undefined;
  set(commandId: string, state: CommandState): void;
  /** The stream ended (dropped as slow, or the server restarted): states must be asked for. */
  readonly ended: boolean;
  /** `resync` events heard: each says changes before it may have been lost, so states must be asked for again. */
  readonly resyncs: number;
  close(): void;
}

/**
 * Step: follow `/v1/live` before any command is sent, so that no change is missed. States are
 * keyed by command id before the POST answers, so the map is bounded instead.
 */
export async function openLiveStates(api: OperatorApi): Promise<LiveStates> {
  const states = new Map<string, CommandState>();
  let ended = false;
  let resyncs = 0;
  const live = await openLiveStream({
    apiUrl: api.apiUrl, caPem: api.caPem, token: api.token(),
    onEvent: ({ event, data }) => {
      if (event === 'resync') resyncs += 1;
      if (event !== 'command') return;
      const message = JSON.parse(data) as { command_id?: string; state?: CommandState };
      if (typeof message.command_id !== 'string' || message.state === undefined) return;
      if (!states.has(message.command_id) && states.size >= commandsMax) return;
      states.set(message.command_id, message.state);
    },
    onEnd: () => { ended = true; },
  });
  return {
    get: (id) => states.get(id),
    set: (id, state) => { states.set(id, state); },
    get ended() { return ended; },
    get resyncs() { return resyncs; },
    close: () => live.close(),
  };
}
