// Issue 12: an acknowledgement goes out live. An operator's SSE stream (/v1/live) sees the alert
// raised, then, after another operator acknowledges it over HTTP, an `alert_acknowledged` event
// naming who and the note; acknowledging again is refused and sends nothing more.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { actors } from './context.js';
import { makeHarness, sqlJsTarget, type Harness } from './test-support.js';

/** An open SSE stream and what it has received so far. */
class SseReader {
  text = '';
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();

  constructor(response: Response) {
    this.#reader = response.body!.getReader();
  }

  /** Reads until `needle` arrived (each read waits for the server; the test runner's timeout bounds it). */
  async readUntil(needle: string): Promise<string> {
    while (!this.text.includes(needle)) {
      const { done, value } = await this.#reader.read();
      if (done) throw new Error(`stream ended before ${needle}`);
      this.text += this.#decoder.decode(value, { stream: true });
    }
    return this.text;
  }

  /** The data of every event of this type received so far. */
  events(type: string): Array<Record<string, unknown>> {
    return this.text.split('\n\n').filter((block) => block.startsWith(`event: ${type}\n`))
      .map((block) => JSON.parse(block.slice(block.indexOf('data: ') + 6)) as Record<string, unknown>);
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => undefined);
  }
}

describe('alert acknowledgement on the live stream', () => {
  let h: Harness;
  let url = '';
  let reader: SseReader | undefined;

  before(async () => {
    h = await makeHarness(sqlJsTarget);
    for (const name of ['watcher', 'acker']) await h.cp.auth.users.add({ name, role: 'operator', password: `${name} password 12`, nowMs: h.clock.nowMs() });
    await h.cp.start();
    ({ url } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: false }));
  });
  after(async () => {
    await reader?.cancel();
    await h.close();
  });

  it('sends alert, then alert_acknowledged with who and the note, to an SSE client', { timeout: 60_000 }, async () => {
    const watcher = await h.cp.auth.authority.issue({ sub: 'watcher', role: 'operator' });
    const issued = await fetch(`${url}/v1/live/tickets`, { method: 'POST', headers: { authorization: `Bearer ${watcher}` } });
    const { ticket } = (await issued.json()) as { ticket: string };
    const response = await fetch(`${url}/v1/live?ticket=${ticket}`);
    assert.equal(response.status, 200);
    reader = new SseReader(response);
    await reader.readUntil('event: hello');
    const alertId = await h.cp.events.raiseAlert({ deviceId: 'dev-1', kind: 'tamper', severity: 'critical', message: 'case opened', atMs: h.clock.nowMs(), detail: {}, actor: actors.system });
    await reader.readUntil(`"alert_id":"${alertId}"`);
    assert.equal(reader.events('alert').at(-1)?.['kind'], 'tamper');

    const acker = await h.cp.auth.authority.issue({ sub: 'acker', role: 'operator' });
    const ack = await fetch(`${url}/v1/alerts/${alertId}/ack`, {
      method: 'POST', headers: { authorization: `Bearer ${acker}`, 'content-type': 'application/json' }, body: JSON.stringify({ note: 'seal replaced' }),
    });
    assert.equal(ack.status, 200, await ack.clone().text());
    await reader.readUntil('event: alert_acknowledged');
    const [acked, ...more] = reader.events('alert_acknowledged');
    assert.deepEqual(more, []);
    assert.equal(acked!['alert_id'], alertId);
    assert.equal(acked!['acknowledged_by'], 'acker');
    assert.equal(acked!['note'], 'seal replaced');
    assert.equal(acked!['device_id'], 'dev-1');

    const again = await fetch(`${url}/v1/alerts/${alertId}/ack`, { method: 'POST', headers: { authorization: `Bearer ${watcher}` } });
    assert.equal(again.status, 409);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'API_ALERT_ALREADY_ACKED');
    // A marker published after the refusal: when it arrives, anything the refusal sent would have arrived before it.
    const marker = await h.cp.events.raiseAlert({ deviceId: 'dev-2', kind: 'marker', severity: 'info', message: 'marker', atMs: h.clock.nowMs(), detail: {}, actor: actors.system });
    await reader.readUntil(`"alert_id":"${marker}"`);
    assert.equal(reader.events('alert_acknowledged').length, 1, 'a refused ack sends nothing');
  });
});
