import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { SdcError } from '../../../core/errors/index.js';
import { viewerStatic } from './viewer-static.js';

/** Review h1, F8: file names were looked up on an object, so names of its prototype's members were "found", read, and answered 503 with a warn line. */
describe('viewer files by name', () => {
  it('answers 404 API_NOT_FOUND for names of Object.prototype members, logs nothing, and still serves the bundle', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-viewer-static-'));
    const warnings: string[] = [];
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(line); } } } });
    try {
      for (const name of ['index.html', 'app.js', 'app.css']) await writeFile(join(dir, name), `/* ${name} */`);
      app.setErrorHandler((error, _request, reply) => {
        const refusal = SdcError.is(error) ? error : new SdcError('API_INTERNAL', 'unexpected');
        return reply.status(refusal.status).send({ error: { code: refusal.code } });
      });
      await app.register(viewerStatic, { viewerDir: dir });
      for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'nope.js']) {
        const answer = await app.inject({ method: 'GET', url: `/viewer/${name}` });
        assert.equal(answer.statusCode, 404, name);
        assert.equal((JSON.parse(answer.body) as { error: { code: string } }).error.code, 'API_NOT_FOUND', name);
      }
      assert.deepEqual(warnings, []);
      const script = await app.inject({ method: 'GET', url: '/viewer/app.js' });
      assert.equal(script.statusCode, 200);
      assert.equal(script.body, '/* app.js */');
    } finally {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
