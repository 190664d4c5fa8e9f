// The OpenAPI document states the W3C traceparent header every route takes and every answer
// carries (issue 12, observability): one shared parameter and response header, on every operation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openApiDocument, type RouteDoc } from './openapi.js';

const routes: RouteDoc[] = [
  { method: 'GET', url: '/v1/devices/:id', summary: 'one device', auth: 'viewer', schema: { params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } } },
  { method: 'POST', url: '/v1/auth/login', summary: 'log in', auth: 'public', schema: { body: { type: 'object' } } },
];

describe('OpenAPI: traceparent', () => {
  const doc = openApiDocument(routes, { title: 't', version: '1' }) as any;

  it('names the traceparent header as an optional parameter of every operation', () => {
    const operations = Object.values(doc.paths).flatMap((methods: any) => Object.values(methods)) as any[];
    assert.equal(operations.length, 2);
    for (const operation of operations) assert.deepEqual(operation.parameters[0], { $ref: '#/components/parameters/traceparent' });
    const parameter = doc.components.parameters.traceparent;
    assert.equal(parameter.in, 'header');
    assert.equal(parameter.required, false);
  });

  it('says every answer, success and error, carries traceparent', () => {
    const operations = Object.values(doc.paths).flatMap((methods: any) => Object.values(methods)) as any[];
    for (const operation of operations) {
      assert.deepEqual(operation.responses['200'].headers, { traceparent: { $ref: '#/components/headers/traceparent' } });
      assert.deepEqual(operation.responses.default.headers, { traceparent: { $ref: '#/components/headers/traceparent' } });
    }
  });

  it("its pattern takes what the server writes and not what it would ignore", () => {
    const pattern = new RegExp(doc.components.headers.traceparent.schema.pattern);
    assert.ok(pattern.test('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'));
    assert.ok(!pattern.test('00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01'), 'upper case is not a traceparent');
    assert.ok(!pattern.test('00-4bf92f3577b34da6a3ce929d0e0e4736-01'));
  });
});
