import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SdcError } from '../core/errors/index.js';
import { sourceModuleFork } from '../runtime/fork-module.js';
import { chunks, type WorkerAgentSpec } from '../sim/real/messages.js';
import type {
  AgentWorkerReport, AgentWorkerRequest, AgentWorkerStatus, BareClientReport, BareClientRequest, CpuReading, ServerMemory, ServerReport, ServerRequest,
} from './connections-messages.js';
import { sleep } from './wall-time.js';

const stopTimeoutMs = 30_000;

/**
 * A child of the bench over IPC (runtime/fork-module.ts's resolution, plus --expose-gc so a server
 * child can collect before its memory is read). `request` sends and folds replies until one ends it.
 */
class BenchChild<Request, Report extends { type: string }> {
  readonly child: ChildProcess;
  failure: string | undefined;
  exited = false;
  readonly #listeners = new Set<(report: Report | { type: 'exit' }) => void>();

  constructor(readonly name: string, baseName: string, args: readonly string[] = []) {
    const built = import.meta.url.endsWith('.js');
    const path = fileURLToPath(new URL(`./${baseName}${built ? '.js' : '.ts'}`, import.meta.url));
    // From the sources: under npm test the runner's compiled mirror with plain node, else the TypeScript loader.
    const { modulePath, execArgv: loaderArgv } = built ? { modulePath: path, execArgv: [] } : sourceModuleFork(path);
    // SDC_BENCH_CPU_PROF_DIR=D: every child writes a V8 CPU profile to D when it exits (not one killed with SIGKILL), to see where a connect phase or a storm spends its CPU.
    const profileDir = process.env.SDC_BENCH_CPU_PROF_DIR;
    const execArgv = ['--expose-gc', ...loaderArgv, ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${name.replace(/[^A-Za-z0-9-]/g, '-')}.cpuprofile`] : [])];
    this.child = fork(modulePath, [...args], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.child.on('message', (report: Report) => {
      if (report.type === 'failed') this.failure ??= (report as unknown as { message: string }).message;
      for (const listener of this.#listeners) listener(report);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      this.failure ??= `exited with ${signal ?? `code ${code}`}`;
      for (const listener of this.#listeners) listener({ type: 'exit' });
    });
    this.child.on('error', (error) => { this.failure ??= error.message; });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(request: Request): void {
    if (!this.exited && this.child.connected) this.child.send(request as object);
  }

  on(listener: (report: Report | { type: 'exit' }) => void): void {
    this.#listeners.add(listener);
  }

  request(request: Request | undefined, timeoutMs: number, onReply: (report: Report) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
        if (error) reject(error);
        else resolve();
      };
      const listener = (report: Report | { type: 'exit' }) => {
        if (report.type === 'exit' || report.type === 'failed') return done(new SdcError('BENCH_FAILED', `${this.name}: ${this.failure ?? 'exited'}`));
        if (onReply(report as Report)) done();
      };
      const timer = setTimeout(() => done(new SdcError('BENCH_FAILED', `${this.name} did not answer within ${timeoutMs} ms`)), timeoutMs);
      this.#listeners.add(listener);
      if (this.exited) return done(new SdcError('BENCH_FAILED', `${this.name}: ${this.failure ?? 'exited'}`));
      if (request !== undefined) this.send(request);
    });
  }

  /** Asks it to stop (`stopRequest`), then kills it if it has not exited within 30 s. */
  async stop(stopRequest: Request): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.send(stopRequest);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), stopTimeoutMs);
    await exited;
    clearTimeout(timer);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

/** A gateway process, or the bare server (connections-server.ts). */
export class ServerChild extends BenchChild<ServerRequest, ServerReport> {
  url = '';

  /**
   * Forks the child without starting a server: it loads its modules (seconds of CPU under tsx)
   * while the bench does other work; `begin` starts the server.
   */
  static fork(role: 'gateway' | 'bare', name: string): ServerChild {
    return new ServerChild(name, 'connections-server', [role]);
  }

  static async start(role: 'gateway' | 'bare', name: string, start: Extract<ServerRequest, { type: 'start' }>, timeoutMs: number): Promise<ServerChild> {
    const server = ServerChild.fork(role, name);
    await server.begin(start, timeoutMs);
    return server;
  }

  /** Starts the server and waits until it listens; a child that does not is killed. */
  async begin(start: Extract<ServerRequest, { type: 'start' }>, timeoutMs: number): Promise<void> {
    try {
      await this.request(start, timeoutMs, (report) => {
        if (report.type !== 'listening') return false;
        this.url = report.url;
        return true;
      });
    } catch (error) {
      this.kill();
      throw error;
    }
  }

  async memory(timeoutMs = 60_000): Promise<ServerMemory> {
    let memory: ServerMemory | undefined;
    await this.request({ type: 'memory' }, timeoutMs, (report) => {
      if (report.type !== 'memory') return false;
      memory = {
        rssBytes: report.rssBytes, heapUsedBytes: report.heapUsedBytes, externalBytes: report.externalBytes, youngGenerationBytes: report.youngGenerationBytes,
        connections: report.connections,
      };
      return true;
    });
    return memory!;
  }

  /** The process's CPU and the agents' messages it received, so far (connections-messages.ts CpuReading). */
  async cpu(timeoutMs = 60_000): Promise<CpuReading> {
    let reading: CpuReading = { userUs: 0, systemUs: 0, framesReceived: 0 };
    await this.request({ type: 'cpu' }, timeoutMs, (report) => {
      if (report.type !== 'cpu') return false;
      reading = { userUs: report.userUs, systemUs: report.systemUs, framesReceived: report.framesReceived };
      return true;
    });
    return reading;
  }

  async tlsHandshakes(timeoutMs = 60_000): Promise<{ full: number; resumed: number; dropped: Readonly<Record<string, number>> }> {
    let counts: { full: number; resumed: number; dropped: Readonly<Record<string, number>> } = { full: 0, resumed: 0, dropped: {} };
    await this.request({ type: 'tlsHandshakes' }, timeoutMs, (report) => {
      if (report.type !== 'tlsHandshakes') return false;
      counts = { full: report.full, resumed: report.resumed, dropped: report.dropped };
      return true;
    });
    return counts;
  }

  close(): Promise<void> {
    return this.stop({ type: 'stop' });
  }
}

/**
 * The agent process that holds agent i: agents are dealt G at a time (G gateways), so each
 * gateway's agents (i mod G) are spread evenly over the processes. Dealt one at a time (i mod P),
 * with P = G every agent of the reconnect bench's killed gateway was in one process, whose one
 * core then paced the storm's client side (docs/benchmarks.md, the 5,000-agent storm).
 */
export function agentProcessOf(agentIndex: number, gateways: number, processes: number): number {
  return Math.floor(agentIndex / Math.max(1, gateways)) % processes;
}

/** Agent children; agents are dealt G at a time, round-robin (agentProcessOf). */
export class AgentChildren {
  readonly #children: Array<BenchChild<AgentWorkerRequest, AgentWorkerReport>>;
  readonly #status = new Map<number, AgentWorkerStatus>();
  readonly violations: string[] = [];

  constructor(processes: number) {
    this.#children = Array.from({ length: processes }, (_, i) => {
      const child = new BenchChild<AgentWorkerRequest, AgentWorkerReport>(`agent process ${i}`, 'connections-agent-worker');
      child.on((report) => {
        if (report.type === 'status') this.#status.set(i, report.status);
        else if (report.type === 'violation' && this.violations.length < 100) this.violations.push(`agent process ${i}: ${report.message}`);
      });
      return child;
    });
  }

  get processes(): number {
    return this.#children.length;
  }

  start(agents: readonly WorkerAgentSpec[], settings: { telemetryIntervalMs: number; backoffMaxMs: number; window: number }): void {
    const dealt = this.#children.map((): WorkerAgentSpec[] => []);
    const gateways = agents[0]?.gatewayUrls?.length ?? 1;
    agents.forEach((agent, i) => dealt[agentProcessOf(i, gateways, this.#children.length)]!.push(agent));
    this.#children.forEach((child, i) => {
      for (const part of chunks(dealt[i]!)) child.send({ type: 'agents', agents: part });
      child.send({ type: 'start', ...settings });
    });
  }

  assertHealthy(): void {
    const bad = this.#children.find((c) => c.exited || c.failure !== undefined);
    if (bad) throw new SdcError('BENCH_FAILED', `${bad.name}: ${bad.failure ?? 'exited'}`);
  }

  totals(): AgentWorkerStatus {
    const statuses = [...this.#status.values()];
    const sum = (key: keyof AgentWorkerStatus) => statuses.reduce((n, s) => n + s[key], 0);
    return { agents: sum('agents'), connected: sum('connected'), executions: sum('executions'), violations: sum('violations') };
  }

  /** Polls until `connected` reaches `count` (true) or the deadline passes (false). */
  async waitConnected(count: number, deadlineMs: number, progress: (connected: number) => void): Promise<boolean> {
    let reported = -1;
    for (;;) {
      this.assertHealthy();
      const { connected } = this.totals();
      if (connected !== reported) {
        reported = connected;
        progress(connected);
      }
      if (connected >= count) return true;
      if (Date.now() >= deadlineMs) return false;
      await sleep(100);
    }
  }

  /** How long after `sinceMs` each agent whose session closed since then was ready again (by device id); and those not back. */
  async returns(sinceMs: number): Promise<{ afterMs: number[]; byDevice: Map<string, number>; closed: number; notBack: number }> {
    const afterMs: number[] = [];
    const byDevice = new Map<string, number>();
    let closed = 0;
    let notBack = 0;
    await Promise.all(this.#children.map((child) => child.request({ type: 'returns', sinceMs }, 60_000, (report) => {
      if (report.type === 'returns') {
        for (const [deviceId, ms] of report.items) {
          afterMs.push(ms);
          byDevice.set(deviceId, ms);
        }
      }
      else if (report.type === 'returnsDone') { closed += report.closed; notBack += report.notBack; return true; }
      return false;
    })));
    return { afterMs, byDevice, closed, notBack };
  }

  /** Every agent process's CPU so far, summed (framesReceived 0: agents receive no agents' messages). */
  async cpu(): Promise<CpuReading> {
    const readings = await Promise.all(this.#children.map(async (child) => {
      let reading: CpuReading = { userUs: 0, systemUs: 0, framesReceived: 0 };
      await child.request({ type: 'cpu' }, 60_000, (report) => {
        if (report.type !== 'cpu') return false;
        reading = { userUs: report.userUs, systemUs: report.systemUs, framesReceived: 0 };
        return true;
      });
      return reading;
    }));
    return readings.reduce((a, b) => ({ userUs: a.userUs + b.userUs, systemUs: a.systemUs + b.systemUs, framesReceived: 0 }), { userUs: 0, systemUs: 0, framesReceived: 0 });
  }

  async executions(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    await Promise.all(this.#children.map((child) => child.request({ type: 'executions' }, 60_000, (report) => {
      if (report.type === 'executions') for (const [id, n] of report.items) counts.set(id, (counts.get(id) ?? 0) + n);
      return report.type === 'executionsDone';
    })));
    return counts;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.#children.map((child) => child.stop({ type: 'stop' })));
  }
}

/** Bare client children holding one plain mutual-TLS connection per directory. */
export class BareClients {
  readonly #children: Array<BenchChild<BareClientRequest, BareClientReport>> = [];
  readonly #open = new Map<number, number>();

  /** Forks `processes` children, which load their modules until `load` deals them directories. */
  constructor(processes: number) {
    this.grow(processes);
  }

  get processes(): number {
    return this.#children.length;
  }

  /** Forks more children until there are `processes`. */
  grow(processes: number): void {
    for (let i = this.#children.length; i < processes; i++) {
      const child = new BenchChild<BareClientRequest, BareClientReport>(`bare client process ${i}`, 'connections-bare-client');
      child.on((report) => { if (report.type === 'status') this.#open.set(i, report.open); });
      this.#children.push(child);
    }
  }

  /** Deals the directories round-robin over the children (call once). */
  load(dirs: readonly string[]): void {
    const processes = this.#children.length;
    this.#children.forEach((child, i) => {
      for (const part of chunks(dirs.filter((_, j) => j % processes === i))) child.send({ type: 'dirs', dirs: part });
    });
  }

  /** Opens every connection (after a start delay uniform in [0, jitterMs]); resolves with each one's ms from the request to open. */
  async open(url: string, caPem: string, jitterMs: number, timeoutMs: number): Promise<number[]> {
    const afterMs: number[] = [];
    await Promise.all(this.#children.map((child) => child.request({ type: 'open', url, caPem, jitterMs, backoffMaxMs: 8_000 }, timeoutMs, (report) => {
      if (report.type === 'opened') afterMs.push(...report.afterMs);
      return report.type === 'openedDone';
    })));
    return afterMs;
  }

  /** Every child sends `messages` rounds of `bytes`-byte messages on its open connections; resolves with the messages sent in all. */
  async traffic(messages: number, bytes: number, intervalMs: number, timeoutMs: number): Promise<number> {
    let sent = 0;
    await Promise.all(this.#children.map((child) => child.request({ type: 'traffic', messages, bytes, intervalMs }, timeoutMs, (report) => {
      if (report.type !== 'trafficDone') return false;
      sent += report.sent;
      return true;
    })));
    return sent;
  }

  openCount(): number {
    return [...this.#open.values()].reduce((a, b) => a + b, 0);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.#children.map((child) => child.stop({ type: 'close' })));
  }
}
