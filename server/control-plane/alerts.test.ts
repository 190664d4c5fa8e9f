import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { actors } from './context.js';
import { pageLimitMax } from './pagination.js';
import { makeHarness, mysqlTarget, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';

function suite(target: SqlTarget): void {
  describe(`alert routes on ${target.name}`, () => {
    let h: Harness;
    const tokens: Record<string, string> = {};
    /** Alert ids in the order raised; created_at_ms rises by 1 s per alert. */
    const raised: Array<{ id: string; device: string; atMs: number }> = [];
    let t0 = 0;

    const call = async (method: 'GET' | 'POST', url: string, token?: string) => {
      const response = await h.cp.app.inject({ method, url, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body };
    };
    const postJson = async (url: string, payload: unknown, token: string | undefined) => {
      const response = await h.cp.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown>, headers: { authorization: `Bearer ${token}` } });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body };
    };
    const ids = (body: Record<string, any>) => (body.items as Array<{ id: string }>).map((a) => a.id);

    before(async () => {
      h = await makeHarness(target);
      for (const role of ['viewer', 'operator', 'admin'] as const) {
        // Tokens name users that exist: the API refuses a token whose user does not (API_TOKEN_SUBJECT_INVALID).
        await h.cp.auth.users.add({ name: `${role}-1`, role, password: `${role} password 123`, nowMs: h.clock.nowMs() });
        tokens[role] = await h.cp.auth.authority.issue({ sub: `${role}-1`, role });
      }
      t0 = h.clock.nowMs();
      for (let i = 0; i < 5; i += 1) {
        const device = i % 2 === 0 ? 'dev-even' : 'dev-odd';
        const atMs = t0 + i * 1_000;
        const id = await h.cp.events.raiseAlert({ deviceId: device, kind: 'risk_score', severity: 'warning', message: `alert ${i}`, atMs, detail: { i }, actor: actors.system });
        raised.push({ id, device, atMs });
      }
    });
    after(async () => {
      await h.close();
      await target.cleanup();
    });

    it('lists alerts newest first with their fields, and pages with a cursor until next_cursor is null', async () => {
      const all = await call('GET', '/v1/alerts', tokens.viewer);
      assert.equal(all.status, 200, all.text);
      assert.deepEqual(ids(all.json()), raised.map((a) => a.id).reverse());
      assert.equal(all.json().next_cursor, null);
      assert.deepEqual(all.json().items[4], {
        id: raised[0]!.id, device_id: 'dev-even', kind: 'risk_score', severity: 'warning', state: 'open', message: 'alert 0', detail: { i: 0 },
        created_at_ms: t0, updated_at_ms: t0, acknowledged_by: null, acknowledged_at_ms: null, ack_note: null, cleared_at_ms: null,
      });
      const seen: string[] = [];
      let url = '/v1/alerts?limit=2';
      for (let page = 0; page < 10; page += 1) {
        const body = (await call('GET', url, tokens.viewer)).json();
        assert.ok(body.items.length <= 2);
        seen.push(...ids(body));
        if (body.next_cursor === null) break;
        url = `/v1/alerts?limit=2&cursor=${body.next_cursor as string}`;
      }
      assert.deepEqual(seen, raised.map((a) => a.id).reverse());
    });

    it('filters by device, since_ms and acknowledged', async () => {
      const odd = (await call('GET', '/v1/alerts?device_id=dev-odd', tokens.viewer)).json();
      assert.deepEqual(ids(odd), [raised[3]!.id, raised[1]!.id]);
      const since = (await call('GET', `/v1/alerts?since_ms=${raised[3]!.atMs}`, tokens.viewer)).json();
      assert.deepEqual(ids(since), [raised[4]!.id, raised[3]!.id]);
      const both = (await call('GET', `/v1/alerts?device_id=dev-even&since_ms=${raised[1]!.atMs}`, tokens.viewer)).json();
      assert.deepEqual(ids(both), [raised[4]!.id, raised[2]!.id]);
      assert.deepEqual(ids((await call('GET', '/v1/alerts?acknowledged=true', tokens.viewer)).json()), []);
      assert.equal((await call('GET', '/v1/alerts?acknowledged=false', tokens.viewer)).json().items.length, 5);
    });

    it('refuses bad queries: limits, cursors, unknown parameters, no token', async () => {
      const tooMany = await call('GET', `/v1/alerts?limit=${pageLimitMax + 1}`, tokens.viewer);
      assert.equal(tooMany.status, 400);
      assert.equal(tooMany.json().error.code, 'API_VALIDATION');
      assert.equal((await call('GET', '/v1/alerts?limit=0', tokens.viewer)).json().error.code, 'API_VALIDATION');
      assert.equal((await call('GET', '/v1/alerts?acknowledged=maybe', tokens.viewer)).json().error.code, 'API_VALIDATION');
      assert.equal((await call('GET', '/v1/alerts?since_ms=-1', tokens.viewer)).json().error.code, 'API_VALIDATION');
      assert.equal((await call('GET', '/v1/alerts?state=closed', tokens.viewer)).json().error.code, 'API_VALIDATION');
      assert.equal((await call('GET', '/v1/alerts?state=open&acknowledged=true', tokens.viewer)).json().error.code, 'API_VALIDATION');
      const badCursor = await call('GET', `/v1/alerts?cursor=${Buffer.from('nonsense').toString('base64url')}`, tokens.viewer);
      assert.equal(badCursor.status, 400);
      assert.equal(badCursor.json().error.code, 'API_CURSOR_INVALID');
      assert.equal((await call('GET', '/v1/alerts')).json().error.code, 'API_UNAUTHENTICATED');
    });

    it('acknowledges as an operator: records who, when and the note, audits once, and refuses a second ack with API_ALERT_ALREADY_ACKED', async () => {
      const target = raised[2]!;
      const viewer = await call('POST', `/v1/alerts/${target.id}/ack`, tokens.viewer);
      assert.equal(viewer.status, 403);
      assert.equal(viewer.json().error.code, 'API_FORBIDDEN');
      h.clock.advance(5_000);
      const ackAtMs = h.clock.nowMs();
      const first = await postJson(`/v1/alerts/${target.id}/ack`, { note: 'looked at it' }, tokens.operator);
      assert.equal(first.status, 200, first.text);
      assert.equal(first.json().state, 'acknowledged');
      assert.equal(first.json().acknowledged_by, 'operator-1');
      assert.equal(first.json().acknowledged_at_ms, ackAtMs);
      assert.equal(first.json().updated_at_ms, ackAtMs);
      assert.equal(first.json().ack_note, 'looked at it');
      h.clock.advance(5_000);
      const second = await call('POST', `/v1/alerts/${target.id}/ack`, tokens.admin);
      assert.equal(second.status, 409);
      assert.equal(second.json().error.code, 'API_ALERT_ALREADY_ACKED');
      assert.equal((await call('GET', `/v1/alerts?state=acked`, tokens.viewer)).json().items[0].acknowledged_by, 'operator-1', 'the first acknowledgement is kept');
      const longNote = await postJson(`/v1/alerts/${raised[0]!.id}/ack`, { note: 'x'.repeat(1025) }, tokens.operator);
      assert.equal(longNote.json().error.code, 'API_VALIDATION');
      const unknownField = await postJson(`/v1/alerts/${raised[0]!.id}/ack`, { reason: 'x' }, tokens.operator);
      assert.equal(unknownField.json().error.code, 'API_VALIDATION');
      const audited = (await h.cp.auditStore.scan(1, 1_000)).filter((e) => e.kind === 'alert.acknowledged');
      assert.equal(audited.length, 1);
      assert.equal(audited[0]!.actor, 'user:operator-1');
      assert.equal(audited[0]!.subject, `alert:${target.id}`);
      assert.equal(audited[0]!.payload['note'], 'looked at it');
      assert.deepEqual(ids((await call('GET', '/v1/alerts?acknowledged=true', tokens.viewer)).json()), [target.id]);
      assert.deepEqual(ids((await call('GET', '/v1/alerts?state=acked', tokens.viewer)).json()), [target.id]);
      assert.equal((await call('GET', '/v1/alerts?acknowledged=false', tokens.viewer)).json().items.length, 4);
      assert.equal((await call('GET', '/v1/alerts?state=open', tokens.viewer)).json().items.length, 4);
    });

    it('answers an unknown alert with 404 API_ALERT_NOT_FOUND and a malformed id with API_VALIDATION', async () => {
      const unknown = await call('POST', `/v1/alerts/a_${'0'.repeat(32)}/ack`, tokens.operator);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json().error.code, 'API_ALERT_NOT_FOUND');
      assert.equal((await call('POST', `/v1/alerts/${'x'.repeat(65)}/ack`, tokens.operator)).json().error.code, 'API_VALIDATION');
    });

    it('documents both routes, their parameters and answers in the OpenAPI document', async () => {
      const doc = (await call('GET', '/openapi.json')).json();
      const list = doc.paths['/v1/alerts'].get;
      assert.equal(list['x-sdc-role'], 'viewer');
      // Every operation takes the shared traceparent header first (openapi-trace.test.ts), then its own.
      const traceparentRef = { $ref: '#/components/parameters/traceparent' };
      assert.deepEqual(list.parameters[0], traceparentRef);
      assert.deepEqual(list.parameters.slice(1).map((p: { name: string }) => p.name).sort(), ['acknowledged', 'cursor', 'device_id', 'limit', 'since_ms', 'state']);
      assert.equal(list.parameters.find((p: { name: string }) => p.name === 'limit').schema.maximum, pageLimitMax);
      assert.ok(list.responses['200'].content['application/json'].schema.properties.items);
      const ack = doc.paths['/v1/alerts/{id}/ack'].post;
      assert.equal(ack['x-sdc-role'], 'operator');
      assert.deepEqual(ack.parameters[0], traceparentRef);
      assert.deepEqual(ack.parameters.slice(1).map((p: { name: string; in: string }) => `${p.in}:${p.name}`), ['path:id']);
      assert.ok(ack.responses['200'].content['application/json'].schema.properties.acknowledged_by);
      assert.ok(ack.requestBody.content['application/json'].schema.properties.note);
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env['MYSQL_URL'];
if (mysqlUrl !== undefined && mysqlUrl !== '') suite(mysqlTarget(mysqlUrl));
else describe('alert routes on mysql', { skip: 'MYSQL_URL is not set; the same suite runs on sql.js above' }, () => {});
