import { commandStates, commandTerminalStates, type CommandState } from '../../core/protocol/command-machine.js';
import type { SeededRandom } from '../../core/random/prng.js';
import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemScheduler } from '../../runtime/system.js';
import { commandMeanGapMs, opcodePicker, type Scenario } from '../scenario.js';
import { forEachBounded, sleep } from './concurrency.js';
import { commandsMax, type LiveStates } from './live-states.js';
import type { OperatorApi } from './operator-api.js';
import type { ViolationLog } from './violations.js';
import type { WorkerPool } from './worker-pool.js';

/** POSTs in flight at once; a draw while this many are open is skipped (counted), so a slow server does not pile them up. */
const commandPostsInFlightMax = 64;
/** Commands read back at once when the live stream is gone. */
const readBackConcurrency = 16;
/** Unfinished commands asked for directly at each look when the live stream is gone. */
const readBackPerLookMax = 200;
const drainPollMs = 250;
/** A run keeps at most about 200 samples, one a second or more apart. */
const seriesSamplesTarget = 200;

export interface RealSeriesSample {
  readonly t_ms: number;
  readonly online_agents: number;
  readonly commands: Readonly<Record<CommandState, number>>;
}

export function emptyStates(): Record<CommandState, number> {
  return Object.fromEntries(commandStates.map((s) => [s, 0])) as Record<CommandState, number>;
}

/** The commands the control plane accepted, and what the live stream says of them. */
export class AcceptedCommands {
  readonly ids: string[] = [];

  constructor(private readonly live: LiveStates) {}

  stateOf(id: string): CommandState {
    return this.live.get(id) ?? 'queued';
  }

  byState(): Record<CommandState, number> {
    const states = emptyStates();
    for (const id of this.ids) states[this.stateOf(id)] += 1;
    return states;
  }

  unfinished(): string[] {
    return this.ids.filter((id) => !commandTerminalStates.includes(this.stateOf(id)));
  }
}

/**
 * Step: the time series of online agents and command states, from now until `stop`, which takes
 * a last sample and returns them all (later calls return the same). Owns its timer.
 */
export function startSeries(options: { pool: WorkerPool; accepted: AcceptedCommands; spanMs: number }): { stop(): RealSeriesSample[] } {
  const series: RealSeriesSample[] = [];
  const startMs = systemClock.nowMs();
  const intervalMs = Math.max(1_000, Math.ceil(options.spanMs / seriesSamplesTarget / 1_000) * 1_000);
  const sample = () => series.push({ t_ms: systemClock.nowMs() - startMs, online_agents: options.pool.totals().connected, commands: options.accepted.byState() });
  let timer = systemScheduler.schedule(0, function tick() {
    sample();
    timer = systemScheduler.schedule(intervalMs, tick);
  });
  let stopped = false;
  return {
    stop() {
      if (stopped) return series;
      stopped = true;
      systemScheduler.cancel(timer);
      sample();
      return series;
    },
  };
}

export interface ScheduleOptions {
  readonly api: OperatorApi;
  readonly pool: WorkerPool;
  readonly scenario: Scenario;
  readonly deviceIds: readonly string[];
  readonly random: SeededRandom;
  readonly durationMs: number;
  readonly accepted: AcceptedCommands;
  readonly counts: Record<string, number>;
}

/**
 * Step: commands at the scenario's rate for `durationMs`, to devices and with opcodes drawn from
 * the seed; returns when every POST has been answered. The draws happen whether or not a command
 * can be sent, so a slow server does not shift the choices.
 */
/**
 * A POST whose answer says nothing about whether the command was stored: no answer came (the
 * transport failed or timed out), or the control plane lost its COMMIT's outcome and could not
 * read the row back (STORE_COMMIT_UNKNOWN). Such a command may run; it is counted apart from the
 * refused ones, which never do.
 */
function outcomeUnknown(error: unknown): boolean {
  if (SdcError.is(error, 'HTTP_UNREACHABLE')) return true;
  return SdcError.is(error, 'HTTP_REFUSED') && error.details['serverCode'] === 'STORE_COMMIT_UNKNOWN';
}

export async function runCommandSchedule(options: ScheduleOptions): Promise<void> {
  const { api, pool, scenario, random, accepted, counts } = options;
  const meanGapMs = commandMeanGapMs(scenario.commands, options.deviceIds.length);
  if (meanGapMs <= 0) return;
  const pickOpcode = opcodePicker(scenario.commands.mix, random);
  const endMs = systemClock.nowMs() + options.durationMs;
  const posts = new Set<Promise<void>>();
  while (systemClock.nowMs() < endMs) {
    await sleep(random.intBetween(0, Math.max(1, Math.round(2 * meanGapMs))));
    if (systemClock.nowMs() >= endMs) break;
    pool.assertHealthy();
    const deviceId = random.pick(options.deviceIds);
    const opcode = pickOpcode();
    if (posts.size >= commandPostsInFlightMax || accepted.ids.length >= commandsMax) {
      counts.commands_skipped! += 1;
      continue;
    }
    const post: Promise<void> = api.call<{ id: string }>('POST', '/v1/commands', { device_id: deviceId, opcode, args: {}, ttl_ms: scenario.commands.ttlMs }).then((command) => {
      counts.commands_accepted! += 1;
      accepted.ids.push(command.id);
    }, (error: unknown) => {
      if (outcomeUnknown(error)) counts.commands_outcome_unknown = (counts.commands_outcome_unknown ?? 0) + 1;
      else counts.commands_refused! += 1;
    }).finally(() => { posts.delete(post); });
    posts.add(post);
  }
  await Promise.all([...posts]);
}

/**
 * Step: wait until every accepted command is terminal, at most `boundMs` (the scenario's liveness
 * bound; beyond it a `liveness` violation). Returns the wait, or null when the bound passed.
 *
 * States come from the live stream. It is at most once: when it ends, or says `resync` (the server
 * lost changes, e.g. during a store outage), the open commands are read back from the API, a page
 * a look. At the bound the open ones are read back once more, so the verdict is the API's: a
 * command the API calls terminal is not a liveness failure, but if the stream neither told its
 * state nor said `resync`, the live feed failed its clients (`live_feed`).
 */
export async function drainCommands(options: { api: OperatorApi; pool: WorkerPool; live: LiveStates; accepted: AcceptedCommands; boundMs: number; violations: ViolationLog }): Promise<number | null> {
  const { api, pool, live, accepted, boundMs } = options;
  const startMs = systemClock.nowMs();
  const readBack = (ids: readonly string[]): Promise<void> => forEachBounded(ids, readBackConcurrency, async (id) => {
    live.set(id, (await api.call<{ state: CommandState }>('GET', `/v1/commands/${id}`)).state);
  });
  // Commands open when the last resync was heard, still to be read back (a page per look).
  let owed: string[] = [];
  let resyncsSeen = 0;
  for (;;) {
    pool.assertHealthy();
    if (live.resyncs > resyncsSeen) {
      resyncsSeen = live.resyncs;
      owed = accepted.unfinished();
    }
    let open = accepted.unfinished();
    if (open.length > 0 && (live.ended || owed.length > 0)) {
      const page = live.ended ? open.slice(0, readBackPerLookMax) : owed.splice(0, readBackPerLookMax);
      await readBack(page);
      open = accepted.unfinished();
    }
    if (open.length === 0) return systemClock.nowMs() - startMs;
    if (systemClock.nowMs() >= startMs + boundMs) {
      await readBack(open.slice(0, readBackPerLookMax));
      const stillOpen = accepted.unfinished();
      const stillOpenIds = new Set(stillOpen);
      const unheard = open.filter((id) => !stillOpenIds.has(id));
      if (unheard.length > 0) {
        options.violations.add('live_feed', `${unheard.length} commands terminal by the API but still open on the live stream, which sent neither their state nor a resync (first: ${unheard[0]})`);
      }
      if (stillOpen.length === 0) return systemClock.nowMs() - startMs;
      options.violations.add('liveness', `${stillOpen.length} commands not terminal ${boundMs} ms after the last command (first: ${stillOpen[0]})`);
      return null;
    }
    await sleep(drainPollMs);
  }
}
