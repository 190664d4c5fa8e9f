// The devices' side of `sdc bench enroll`, in its own process so that the control plane's CPU is
// measured apart from the clients'. It makes every device's key and CSR first (the devices' work,
// not timed), says so, then on each `run` sends one request per device, `concurrency` at once,
// each over a new TLS connection, as a device enrolling for the first time does.
import { performance } from 'node:perf_hooks';
import { createCsrPem } from '../agent/enrollment.js';
import { httpsJson } from '../runtime/https-json.js';
import { systemRandom } from '../runtime/system.js';

export type EnrollClientRequest =
  | { readonly type: 'prepare'; readonly deviceIds: readonly string[] }
  | {
    readonly type: 'run';
    readonly label: string;
    readonly url: string;
    readonly caPem: string;
    /** Pairing tokens in the order of `prepare`'s device ids; for the bare server any string. */
    readonly tokens: readonly string[];
    readonly concurrency: number;
    readonly timeoutMs: number;
  }
  | { readonly type: 'stop' };

export type EnrollClientReport =
  | { readonly type: 'prepared'; readonly csrs: number }
  | {
    readonly type: 'ran';
    readonly label: string;
    readonly latenciesMs: readonly number[];
    readonly failures: number;
    readonly firstFailure: string | null;
    readonly wallMs: number;
    readonly cpuMs: number;
  }
  | { readonly type: 'failed'; readonly message: string };

const send = (report: EnrollClientReport): void => { process.send?.(report); };

let deviceIds: readonly string[] = [];
let csrs: string[] = [];

async function prepare(ids: readonly string[]): Promise<void> {
  deviceIds = ids;
  csrs = [];
  for (const deviceId of ids) csrs.push(await createCsrPem(systemRandom.bytes(32), deviceId));
  send({ type: 'prepared', csrs: csrs.length });
}

async function run(request: Extract<EnrollClientRequest, { type: 'run' }>): Promise<void> {
  const latenciesMs: number[] = [];
  let failures = 0;
  let firstFailure: string | null = null;
  let next = 0;
  const cpuBefore = process.cpuUsage();
  const startMs = performance.now();
  await Promise.all(Array.from({ length: Math.min(request.concurrency, deviceIds.length) }, async () => {
    while (next < deviceIds.length) {
      const index = next++;
      const sentMs = performance.now();
      try {
        await httpsJson({
          method: 'POST', url: request.url, caPem: request.caPem, timeoutMs: request.timeoutMs, newConnection: true,
          body: { device_id: deviceIds[index]!, token: request.tokens[index]!, csr_pem: csrs[index]! },
        });
        latenciesMs.push(performance.now() - sentMs);
      } catch (error) {
        failures += 1;
        firstFailure ??= (error as Error).message;
      }
    }
  }));
  const cpu = process.cpuUsage(cpuBefore);
  send({ type: 'ran', label: request.label, latenciesMs, failures, firstFailure, wallMs: performance.now() - startMs, cpuMs: (cpu.user + cpu.system) / 1000 });
}

process.on('message', (request: EnrollClientRequest) => {
  const step = request.type === 'prepare' ? prepare(request.deviceIds) : request.type === 'run' ? run(request) : undefined;
  if (step === undefined) {
    process.disconnect?.();
    return;
  }
  step.catch((error: unknown) => send({ type: 'failed', message: (error as Error).message }));
});
