// `sdc chaos run` makes a MySQL database of its own first (createRunDatabase). A server that refuses
// that connection (here nothing listens; on a busy server, "Too many connections") is the store's
// typed refusal, STORE_UNAVAILABLE, not `sdc: internal error` with mysql2's bare message.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { main } from '../main.js';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('sdc chaos run: the run database refused', () => {
  it('MySQL not reachable for the run database: STORE_UNAVAILABLE, exit 1, no internal error', async () => {
    const err: string[] = [];
    const io = { stdout: () => undefined, stderr: (t: string) => { err.push(t); }, readStdin: async () => '', env: { SDC_LOG_LEVEL: 'silent' } };
    const code = await main(['chaos', 'run', '--scenario', 'mysql-cut', '--mysql', `mysql://root@127.0.0.1:${await closedPort()}/test`, '--redis', 'redis://127.0.0.1:1', '--json'], io);
    const text = err.join('');
    assert.equal(code, 1, text);
    assert.match(text, /STORE_UNAVAILABLE/);
    assert.doesNotMatch(text, /internal error/);
  });
});
