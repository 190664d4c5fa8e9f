/**
 * Parts of the gateway's work per frame, each measured on its own in one process, rounds
 * alternating (docs/benchmarks.md, 2026-12-04 morning). `sdc bench connections` shows the whole
 * frame (550-900 µs of the gateway's CPU at 2,000 agents); a change of a few µs is below what it
 * can show, so the parts a change trades against each other are measured here:
 *
 * - re-arming a timer (clearTimeout + setTimeout) among `--sessions` live ones of varied
 *   durations: what an eager session timer costs per frame;
 * - a timer firing on a wake-up of its own (timers 3 ms apart, the loop idle between them), less
 *   the loop's own cost over the same wall time: what a lazy session timer's early firing, or a
 *   store reply read on its own, costs;
 * - a session's serial task (SerialTasks.push + the task): then(task).catch().finally() (before
 *   cff6ef9) against then(task).then(done, failed) (after).
 *
 *   nice -n 10 npx tsx scripts/measure-gateway-frame-parts.ts [--sessions 2000] [--rounds 5]
 */
import { parseArgs } from 'node:util';
import { SerialTasks } from '../server/gateway/serial-tasks.js';

const { values } = parseArgs({ options: { sessions: { type: 'string' }, rounds: { type: 'string' } } });
const sessions = Number(values.sessions ?? 2000);
const rounds = Number(values.rounds ?? 5);
const rearms = 200_000;
const lonelyFires = 300;
const tasksPerRound = 200_000;

const cpuUs = () => { const u = process.cpuUsage(); return u.user + u.system; };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const live: NodeJS.Timeout[] = Array.from({ length: sessions }, (_, i) => setTimeout(() => undefined, 60_000 + i * 7).unref());
const noop = () => undefined;

function rearmUs(): number {
  const start = cpuUs();
  for (let k = 0; k < rearms; k++) {
    const i = k % sessions;
    clearTimeout(live[i]);
    live[i] = setTimeout(noop, 37_500 + ((k * 7919) % 30_000)).unref();
  }
  return (cpuUs() - start) / rearms;
}

async function lonelyFireUs(): Promise<number> {
  const spacingMs = 3;
  let fired = 0;
  const start = cpuUs();
  await new Promise<void>((resolve) => {
    for (let i = 0; i < lonelyFires; i++) setTimeout(() => { if (++fired === lonelyFires) resolve(); }, spacingMs * (i + 1));
  });
  const firing = cpuUs() - start;
  const idleStart = cpuUs();
  await sleep(spacingMs * lonelyFires);
  const idle = cpuUs() - idleStart;
  return (firing - idle) / lonelyFires;
}

/** The serial tasks as they were before cff6ef9. */
class SerialTasksBefore {
  #tail: Promise<void> = Promise.resolve();
  #queued = 0;
  constructor(private readonly tasksMax: number, private readonly onError: (error: unknown) => void) {}
  push(task: () => Promise<void>): boolean {
    if (this.#queued >= this.tasksMax) return false;
    this.#queued += 1;
    this.#tail = this.#tail.then(task).catch(this.onError).finally(() => { this.#queued -= 1; });
    return true;
  }
  drained(): Promise<void> {
    return this.#tail;
  }
}

async function serialTaskUs(after: boolean): Promise<number> {
  const queues = Array.from({ length: sessions }, () => (after ? new SerialTasks(256, () => undefined) : new SerialTasksBefore(256, () => undefined)));
  const task = async (): Promise<void> => undefined;
  const start = cpuUs();
  for (let i = 0; i < tasksPerRound; i += sessions) {
    for (const queue of queues) queue.push(task);
    await Promise.all(queues.map((q) => q.drained()));
  }
  return (cpuUs() - start) / tasksPerRound;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const out = { rearm: [] as number[], lonely_fire: [] as number[], task_before: [] as number[], task_after: [] as number[] };
for (let round = 0; round < rounds; round++) {
  out.rearm.push(rearmUs());
  out.lonely_fire.push(await lonelyFireUs());
  for (const after of round % 2 === 0 ? [false, true] : [true, false]) (after ? out.task_after : out.task_before).push(await serialTaskUs(after));
  process.stderr.write(`round ${round + 1}: re-arm ${out.rearm.at(-1)!.toFixed(2)} µs, lone firing ${out.lonely_fire.at(-1)!.toFixed(1)} µs, task before ${out.task_before.at(-1)!.toFixed(3)} after ${out.task_after.at(-1)!.toFixed(3)} µs\n`);
}
const round3 = (x: number) => Math.round(x * 1000) / 1000;
console.log(JSON.stringify({
  sessions, rounds,
  medians_us: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, round3(median(v))])),
  rounds_us: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.map(round3)])),
}));
