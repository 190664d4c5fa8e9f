// Issue 12, "Structured logs": one W3C trace id per operation, carried end to end. A command is
// sent with an incoming `traceparent` through a whole deployment on loopback TLS (control plane,
// gateway, a real agent with the mock kernel), every service logging into one capture, and its
// trace id is followed through every service's log lines: the API request, the command's
// creation, its dispatch onto the bus, the gateway's delivery, the agent's receipt, the kernel
// call, and the result on its way back and as the control plane records it. A second command has
// a trace of its own, and a malformed header starts a new trace instead of being refused.
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { runAgent } from '../../agent/agent-runtime.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { parseTraceparent } from '../../core/trace/trace-context.js';
import { agentDir, eventually, startE2e, storeTargets, waitOnline, waitTerminal, type E2eSystem } from './support/e2e-harness.js';

type LogLine = Record<string, unknown>;

/** One HTTPS call returning status, the traceparent header and the JSON body. */
async function call(system: E2eSystem, method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: object): Promise<{ status: number; traceparent: string | undefined; body: Record<string, any> }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, system.apiUrl), {
      method, ca: system.materials.rootCaPem, minVersion: 'TLSv1.3',
      headers: {
        authorization: `Bearer ${system.token}`, ...headers,
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const header = res.headers.traceparent;
        resolve({ status: res.statusCode ?? 0, traceparent: typeof header === 'string' ? header : undefined, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** The audit entry of `kind` about `subject`, paging from the start (the MySQL database is shared by runs). */
async function auditEntry(system: E2eSystem, kind: string, subject: string): Promise<{ payload: { frame?: string } } | undefined> {
  type Page = { items: Array<{ kind: string; subject: string; payload: { frame?: string } }>; next_from_seq: number | null };
  for (let fromSeq: number | null = 1; fromSeq !== null;) {
    const page: Page = await system.api<Page>('GET', `/v1/audit?from_seq=${fromSeq}&limit=500`);
    const found = page.items.find((entry) => entry.kind === kind && entry.subject === subject);
    if (found !== undefined) return found;
    fromSeq = page.next_from_seq;
  }
  return undefined;
}

const randomHex = (bytes: number): string => Buffer.from(systemRandom.bytes(bytes)).toString('hex');

/** The steps of one command's path, each a log line of one service naming the command (or the request). */
const steps: ReadonlyArray<{ what: string; role: string; msg: string; about: 'command' | 'request' }> = [
  { what: 'the API request', role: 'control-plane', msg: 'request completed', about: 'request' },
  { what: 'command creation', role: 'control-plane', msg: 'command created', about: 'command' },
  { what: 'dispatch onto the bus', role: 'control-plane', msg: 'command dispatched to its gateway', about: 'command' },
  { what: 'the gateway delivery', role: 'gateway', msg: 'command delivered to the device', about: 'command' },
  { what: 'agent receipt', role: 'agent', msg: 'command delivery received', about: 'command' },
  { what: 'the kernel call', role: 'agent', msg: 'kernel call', about: 'request' },
  { what: 'the agent finishing it', role: 'agent', msg: 'command finished', about: 'command' },
  { what: 'the gateway forwarding the result', role: 'gateway', msg: 'command result forwarded', about: 'command' },
  { what: 'result recording', role: 'control-plane', msg: 'command result recorded', about: 'command' },
];

const commandIdOf = (line: LogLine): unknown => line.commandId ?? line.command_id;

for (const target of storeTargets()) {
  describe(`W3C trace context end to end on ${target.name} stores`, () => {
    let system: E2eSystem;
    let deviceId: string;

    before(async () => {
      system = await startE2e({ target });
      deviceId = `e2e-trace-${system.tag}`;
      const { token: pairingToken } = await system.api<{ token: string }>('POST', `/v1/devices/${deviceId}/pairing-tokens`, {});
      const dir = agentDir(system, deviceId);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      // The agent logs into the same capture as the services, tagged like them.
      const logger = pino({ level: 'info' }, system.logs.stream()).child({ role: 'agent' });
      const agent = await runAgent({
        dir, serverUrl: system.apiUrl, deviceId, pairingToken, caPem: system.materials.rootCaPem, kernel: 'mock',
        telemetryIntervalMs: 1_000, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger,
      });
      system.agents.set(deviceId, agent);
      await waitOnline(system, [deviceId]);
    });
    after(async () => {
      await system?.stop();
    });

    it('follows one command\'s trace id from the API request through every service and back; a second command has its own', async () => {
      const incoming = `00-${randomHex(16)}-${randomHex(8)}-01`;
      const traceId = parseTraceparent(incoming)!.traceId;
      const sent = await call(system, 'POST', '/v1/commands', { traceparent: incoming }, { device_id: deviceId, opcode: 'EXEC_GET_PROCESS_LIST', args: { limit: 5 } });
      assert.equal(sent.status, 201, JSON.stringify(sent.body));
      // The answer continues the caller's trace with the request's own span.
      const answered = parseTraceparent(sent.traceparent);
      assert.equal(answered?.traceId, traceId, `answer traceparent ${sent.traceparent}`);
      assert.notEqual(answered?.spanId, parseTraceparent(incoming)!.spanId);
      const commandId = sent.body.id as string;
      const finished = await waitTerminal(system, commandId);
      assert.equal(finished.state, 'succeeded');

      // The device signed the trace into its result, which the audit holds verbatim.
      const detail = await system.api<{ result_frame: { body: { traceparent?: string } } }>('GET', `/v1/commands/${commandId}`);
      assert.equal(parseTraceparent(detail.result_frame.body.traceparent)?.traceId, traceId);
      // The result's audit entry is chained from the outbox after the state change, so it may come a moment after the terminal state.
      const resultEntry = await eventually('the result\'s audit entry chained', () => auditEntry(system, 'command.result', `command:${commandId}`));
      assert.ok(resultEntry?.payload.frame?.includes(traceId), 'the audited result frame names the trace id');

      const lines = await eventually('every step of the command logged', () => {
        const found = steps.map((step) => system.logs.lines.filter((line) => line.role === step.role && line.msg === step.msg
          && (step.about === 'request' ? true : commandIdOf(line) === commandId) && line.trace_id === traceId));
        return found.every((matches) => matches.length > 0) ? found : undefined;
      }, 30_000).catch((error: unknown) => {
        const missing = steps.filter((step) => !system.logs.lines.some((line) => line.role === step.role && line.msg === step.msg && line.trace_id === traceId));
        throw new Error(`${(error as Error).message}; missing: ${missing.map((step) => step.what).join(', ')}`);
      });
      // The API request's lines carry the request's own span and the caller's as its parent.
      const requestLine = lines[0]![0]!;
      assert.equal(requestLine.span_id, answered?.spanId);
      assert.equal(requestLine.parent_id, parseTraceparent(incoming)!.spanId);
      // No line about this command carries another trace id.
      const strays = system.logs.lines.filter((line) => commandIdOf(line) === commandId && line.trace_id !== undefined && line.trace_id !== traceId);
      assert.deepEqual(strays, []);

      // A second command, sent without a traceparent, starts a trace of its own.
      const second = await call(system, 'POST', '/v1/commands', {}, { device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {} });
      assert.equal(second.status, 201, JSON.stringify(second.body));
      const secondTrace = parseTraceparent(second.traceparent)?.traceId;
      assert.ok(secondTrace !== undefined && secondTrace !== traceId, `second trace ${secondTrace}`);
      await waitTerminal(system, second.body.id as string);
      await eventually('the second command\'s result recorded under its own trace', () => system.logs.lines.some((line) => line.msg === 'command result recorded'
        && commandIdOf(line) === second.body.id && line.trace_id === secondTrace) || undefined, 30_000);
    });

    it('a malformed or repeated traceparent is ignored and a new trace started, never refused', async () => {
      for (const header of ['garbage', `00-${'0'.repeat(32)}-${randomHex(8)}-01`, `00-${randomHex(16).toUpperCase()}-${randomHex(8)}-01`]) {
        const answer = await call(system, 'GET', `/v1/devices/${deviceId}`, { traceparent: header });
        assert.equal(answer.status, 200, header);
        const context = parseTraceparent(answer.traceparent);
        assert.ok(context !== undefined, `a valid traceparent answered for ${header}`);
        assert.ok(!header.toLowerCase().includes(context.traceId), `a new trace for ${header}`);
      }
      // An error answer names its trace in the header and in the body's trace_id.
      const incoming = `00-${randomHex(16)}-${randomHex(8)}-00`;
      const refused = await call(system, 'GET', '/v1/commands/c-none', { traceparent: incoming });
      assert.equal(refused.status, 404);
      assert.equal(refused.body.error.trace_id, parseTraceparent(incoming)!.traceId);
      assert.equal(parseTraceparent(refused.traceparent)?.traceId, parseTraceparent(incoming)!.traceId);
      // The flags are carried as they came (not sampled here).
      assert.equal(parseTraceparent(refused.traceparent)?.flags, 0);
    });
  });
}
