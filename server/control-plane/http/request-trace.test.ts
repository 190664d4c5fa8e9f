import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { parseTraceparent } from '../../../core/trace/trace-context.js';
import { makeHarness, sqlJsTarget, type Harness } from '../test-support.js';

/**
 * The API's `traceparent` header (request-trace.ts): a valid one is continued with a span of the
 * request's own, anything else starts a new trace and is never refused; the answer, its error body
 * and every log line of the request name the trace. The whole path of a command is followed in
 * test/e2e/trace-context.test.ts.
 */
describe('traceparent at the API', () => {
  let h: Harness;
  const lines: Array<Record<string, unknown>> = [];
  const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  const get = async (headers: Record<string, string | string[]>) => {
    const response = await h.cp.app.inject({ method: 'GET', url: '/v1/devices', headers });
    return { status: response.statusCode, traceparent: response.headers.traceparent as string | undefined, body: response.json() as { error?: { code: string; trace_id: string } } };
  };

  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const text of chunk.toString('utf8').split('\n')) if (text.length > 0) lines.push(JSON.parse(text) as Record<string, unknown>);
        done();
      },
    });
    h = await makeHarness(sqlJsTarget, { controlPlane: { logger: pino({ level: 'info' }, sink) } });
  });
  after(async () => {
    await h.close();
  });

  it('continues a valid traceparent with a new span, answers it, and puts it in the error body and every log line', async () => {
    // No token: refused by authentication, which runs after the trace is opened.
    const answer = await get({ traceparent: incoming });
    assert.equal(answer.status, 401);
    const context = parseTraceparent(answer.traceparent);
    assert.equal(context?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.notEqual(context?.spanId, '00f067aa0ba902b7');
    assert.equal(context?.flags, 1);
    assert.equal(answer.body.error?.trace_id, context?.traceId);
    const mine = lines.filter((line) => line.trace_id === context?.traceId);
    assert.ok(mine.some((line) => line.msg === 'request refused' && line.code === 'API_UNAUTHENTICATED'), JSON.stringify(mine));
    assert.ok(mine.some((line) => line.msg === 'request completed'), JSON.stringify(mine));
    for (const line of mine) {
      assert.equal(line.span_id, context?.spanId);
      assert.equal(line.parent_id, '00f067aa0ba902b7');
    }
  });

  it('a later version with extra fields is continued on the fields it knows', async () => {
    const answer = await get({ traceparent: '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future' });
    assert.equal(parseTraceparent(answer.traceparent)?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.match(answer.traceparent ?? '', /^00-/);
  });

  it('a missing, malformed or repeated traceparent starts a new trace and is never refused for it', async () => {
    const bad: Array<string | string[] | undefined> = [
      undefined, '', 'garbage', incoming.toUpperCase(), `${incoming}-extra`, `ff${incoming.slice(2)}`,
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      [incoming, incoming], 'x'.repeat(4_000),
    ];
    const seen = new Set<string>();
    for (const header of bad) {
      const answer = await get(header === undefined ? {} : { traceparent: header });
      // The same refusal as without any traceparent: no token.
      assert.equal(answer.body.error?.code, 'API_UNAUTHENTICATED', String(header));
      const context = parseTraceparent(answer.traceparent);
      assert.ok(context !== undefined, `a valid traceparent answered for ${String(header)}`);
      assert.notEqual(context.traceId, '4bf92f3577b34da6a3ce929d0e0e4736', String(header));
      assert.equal(answer.body.error?.trace_id, context.traceId);
      const parentLogged = lines.some((line) => line.trace_id === context.traceId && line.parent_id !== undefined);
      assert.equal(parentLogged, false, 'a new trace names no parent');
      seen.add(context.traceId);
    }
    assert.equal(seen.size, bad.length, 'every new trace has its own id');
  });
});
