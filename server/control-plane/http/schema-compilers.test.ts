import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { Type } from '@sinclair/typebox';
import { buildSharedSerializer, reuseCompiledValidators } from './schema-compilers.js';

const Body = Type.Object({ name: Type.String({ maxLength: 8 }) }, { additionalProperties: false });
const Headers = Type.Object({ 'X-Request-Tag': Type.String({ pattern: '^[a-z]+$' }) });
const Reply = Type.Object({ name: Type.String() });
const customOptions = Object.freeze({ removeAdditional: false, coerceTypes: 'array', allErrors: false } as const);
const reuse = reuseCompiledValidators(customOptions);

/** An app as http/app.ts makes them, with one route; compiledOwn lists the schemas its own Ajv instance compiled (the cache's misses). */
async function appWithRoute(): Promise<{ app: ReturnType<typeof Fastify>; compiledOwn: unknown[] }> {
  const compiledOwn: unknown[] = [];
  const app = Fastify({
    ajv: {
      customOptions,
      onCreate: (ajv) => {
        // Counts the compiles that reach this app's own Ajv instance (below the cache).
        const compile = ajv.compile.bind(ajv);
        ajv.compile = ((schema: unknown, meta?: boolean) => { compiledOwn.push(schema); return compile(schema as object, meta); }) as typeof ajv.compile;
        reuse(ajv);
      },
    },
    schemaController: { compilersFactory: { buildSerializer: buildSharedSerializer } },
  });
  app.post('/x', { schema: { body: Body, headers: Headers, response: { 200: Reply } } }, async (request) => ({ name: (request.body as { name: string }).name, extra: 'dropped by the serializer' }));
  await app.ready();
  return { app, compiledOwn };
}

describe('schema compilers shared by the apps of one process', () => {
  it('a second app compiles its constant body schema no more, and validates and serializes as the first', async () => {
    const first = await appWithRoute();
    const second = await appWithRoute();
    try {
      assert.ok(first.compiledOwn.includes(Body), 'the first app of the process compiles it');
      assert.ok(!second.compiledOwn.includes(Body), 'the body schema is compiled once per process');
      for (const { app } of [first, second]) {
        const ok = await app.inject({ method: 'POST', url: '/x', headers: { 'x-request-tag': 'abc' }, payload: { name: 'ada' } });
        assert.equal(ok.statusCode, 200, ok.body);
        // The response schema still shapes the answer: a member it does not name is left out.
        assert.deepEqual(JSON.parse(ok.body), { name: 'ada' });
        // Validation as before: an unknown member, a too long string, a bad header are refused.
        for (const [payload, headers] of [[{ name: 'ada', x: 1 }, { 'x-request-tag': 'abc' }], [{ name: 'a'.repeat(9) }, { 'x-request-tag': 'abc' }], [{ name: 'ada' }, { 'x-request-tag': 'ABC' }]] as const) {
          const refused = await app.inject({ method: 'POST', url: '/x', headers, payload });
          assert.equal(refused.statusCode, 400, JSON.stringify(payload));
        }
      }
    } finally {
      await first.app.close();
      await second.app.close();
    }
  });

  it('the headers schema keeps fastify\'s own handling (names lower-cased, a copy per app), so it is compiled per app', async () => {
    const first = await appWithRoute();
    const second = await appWithRoute();
    try {
      // fastify lower-cases a plain headers schema's names into a new object for each app: X-Request-Tag is found as x-request-tag.
      assert.ok(second.compiledOwn.some((s) => typeof s === 'object' && s !== null && 'properties' in s && 'x-request-tag' in (s as { properties: object }).properties));
      const missing = await second.app.inject({ method: 'POST', url: '/x', payload: { name: 'ada' } });
      assert.equal(missing.statusCode, 400, 'the header is still required');
    } finally {
      await first.app.close();
      await second.app.close();
    }
  });

  it('a schema with an $id is compiled by each app\'s own instance, and other options do not share the cache', async () => {
    const named = { $id: 'urn:test:named', type: 'object' };
    const ajvA = { compile: (schema: unknown) => ({ from: 'a', schema }) };
    const ajvB = { compile: (schema: unknown) => ({ from: 'b', schema }) };
    reuse(ajvA);
    reuse(ajvB);
    assert.equal((ajvB.compile(named) as { from: string }).from, 'b');
    const plain = { type: 'object' };
    assert.equal((ajvA.compile(plain) as { from: string }).from, 'a');
    assert.equal((ajvB.compile(plain) as { from: string }).from, 'a', 'the same schema and options: the first compiled function');
    const ajvC = { compile: (schema: unknown) => ({ from: 'c', schema }) };
    reuseCompiledValidators({ ...customOptions, allErrors: true })(ajvC);
    assert.equal((ajvC.compile(plain) as { from: string }).from, 'c', 'other options: compiled again');
  });
});
