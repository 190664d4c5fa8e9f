import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { parseCommandArgs, type CliIo } from '../command.js';
import { main } from '../main.js';
import { chaosGroup, serveChaos } from './chaos.js';

function io(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => '', env: { SDC_LOG_LEVEL: 'silent' } };
}

describe('sdc chaos serve', () => {
  it('is listed and documented', async () => {
    const help = io();
    assert.equal(await main(['chaos', 'serve', '--help'], help), 0);
    assert.match(help.out.join(''), /--port P .*8474/);
    const top = io();
    assert.equal(await main(['--help'], top), 0);
    assert.match(top.out.join(''), /chaos/);
  });

  it('refuses a bad port or seed in one line', async () => {
    for (const argv of [['--port', '70000'], ['--port', 'http'], ['--seed', '-1'], ['--bogus']]) {
      const bad = io();
      assert.equal(await main(['chaos', 'serve', ...argv], bad), 2, argv.join(' '));
      assert.match(bad.err.join(''), /^sdc: CLI_USAGE: .*\n$/);
    }
  });

  it('refuses a taken port with CHAOS_LISTEN_FAILED in one line', async () => {
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const port = (squatter.address() as { port: number }).port;
    try {
      const taken = io();
      assert.equal(await main(['chaos', 'serve', '--port', String(port)], taken), 1);
      assert.equal(taken.err.join(''), `sdc: CHAOS_LISTEN_FAILED: listen tcp 127.0.0.1:${port}: bind: address already in use\n`);
    } finally {
      squatter.close();
    }
  });

  // Review h1, F7: proxies listen on loopback only, unless the server was started with --allow-external-listen.
  it('lets proxies listen on other than loopback only with --allow-external-listen', async () => {
    const serve = chaosGroup.commands[0]!;
    for (const [argv, status] of [[[], 403], [['--allow-external-listen'], 201]] as const) {
      const out = io();
      let stop!: (signal: string) => void;
      const stopped = new Promise<string>((resolve) => { stop = resolve; });
      const running = serveChaos(parseCommandArgs(serve, ['--port', '0', ...argv]), out, () => stopped);
      try {
        const url = await new Promise<string>((resolve, reject) => {
          const check = setInterval(() => {
            const match = /chaos API {2}(\S+)/.exec(out.out.join(''));
            if (match) {
              clearInterval(check);
              resolve(match[1]!);
            }
          }, 5);
          running.catch(reject);
        });
        const local = await fetch(`${url}/proxies`, { method: 'POST', body: JSON.stringify({ name: 'local', listen: 'localhost:0', upstream: '127.0.0.1:1' }) });
        assert.equal(local.status, 201, argv.join(' '));
        const exposed = await fetch(`${url}/proxies`, { method: 'POST', body: JSON.stringify({ name: 'exposed', listen: '0.0.0.0:0', upstream: '127.0.0.1:1' }) });
        assert.equal(exposed.status, status, argv.join(' '));
        if (status === 403) assert.match(((await exposed.json()) as { error: string }).error, /not a loopback address/);
      } finally {
        stop('SIGTERM');
        assert.equal(await running, 0);
      }
    }
  });

  it('serves the Toxiproxy API on the given address until stopped, and prints its URL and seed', async () => {
    const out = io();
    const serve = chaosGroup.commands[0]!;
    let stop!: (signal: string) => void;
    const stopped = new Promise<string>((resolve) => { stop = resolve; });
    const running = serveChaos(parseCommandArgs(serve, ['--port', '0', '--seed', '42']), out, () => stopped);
    const url = await new Promise<string>((resolve, reject) => {
      const check = setInterval(() => {
        const match = /chaos API {2}(\S+)/.exec(out.out.join(''));
        if (match) {
          clearInterval(check);
          resolve(match[1]!);
        }
      }, 5);
      running.catch(reject);
    });
    const version = await (await fetch(`${url}/version`)).json();
    assert.deepEqual(version, { version: '2.9.0+sdc' });
    assert.match(out.out.join(''), /seed {7}42 /);
    stop('SIGTERM');
    assert.equal(await running, 0);
    await assert.rejects(fetch(`${url}/version`));
  });
});
