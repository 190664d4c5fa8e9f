import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../main.js';
import type { CliIo } from '../command.js';
import { TestTufRepository } from '../../agent/tuf/testing/tuf-repository.js';

/**
 * `sdc tuf-client` as the TUF conformance suite runs it: through cli/main.ts, against a local
 * HTTP server serving a test repository, with "now" from the system clock (so the repository's
 * expiry is set from Date.now()). Exit status is 0 or 1, never anything else.
 */

function fakeIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => '', env: {} };
}

async function serve(repo: TestTufRepository): Promise<{ server: Server; baseUrl: string }> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '').replace(/^\/repo\//, '');
    const served = repo.serve(path);
    response.writeHead(served.status, { 'content-type': 'application/octet-stream' });
    response.end(served.bytes === undefined ? undefined : Buffer.from(served.bytes));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/repo` };
}

interface World {
  repo: TestTufRepository;
  dir: string;
  metadataDir: string;
  targetDir: string;
  baseUrl: string;
  run(...argv: string[]): Promise<{ code: number; out: string; err: string }>;
  refreshArgs(): string[];
  downloadArgs(target: string): string[];
}

async function withWorld(body: (world: World) => Promise<void>, repoOptions: { lifetimeMs?: number } = {}): Promise<void> {
  const repo = new TestTufRepository({ nowMs: Date.now(), ...repoOptions });
  repo.addTarget('targets', 'tools/app.bin', new TextEncoder().encode('release one'));
  repo.release();
  const dir = await mkdtemp(join(tmpdir(), 'sdc-tuf-client-'));
  const { server, baseUrl } = await serve(repo);
  const metadataDir = join(dir, 'metadata');
  const targetDir = join(dir, 'targets');
  const world: World = {
    repo, dir, metadataDir, targetDir, baseUrl,
    async run(...argv) {
      const io = fakeIo();
      const code = await main(['tuf-client', ...argv], io);
      return { code, out: io.out.join(''), err: io.err.join('') };
    },
    refreshArgs: () => ['--metadata-url', `${baseUrl}/metadata`, '--metadata-dir', metadataDir, 'refresh'],
    downloadArgs: (target) => ['--metadata-url', `${baseUrl}/metadata`, '--metadata-dir', metadataDir, '--target-name', target,
      '--target-dir', targetDir, '--target-base-url', `${baseUrl}/targets`, 'download'],
  };
  try {
    await writeFile(join(dir, 'initial_root.json'), repo.latest('root', 1));
    await body(world);
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('init copies the trusted root without a request; refresh stores the exact bytes under non-versioned names', async () => {
  await withWorld(async (world) => {
    const init = await world.run('--metadata-dir', world.metadataDir, 'init', join(world.dir, 'initial_root.json'));
    assert.equal(init.code, 0, init.err);
    assert.deepEqual(world.repo.requests, []);
    assert.deepEqual(await readFile(join(world.metadataDir, 'root.json')), Buffer.from(world.repo.latest('root', 1)));

    const refresh = await world.run(...world.refreshArgs());
    assert.equal(refresh.code, 0, refresh.err);
    assert.deepEqual((await readdir(world.metadataDir)).sort(), ['root.json', 'snapshot.json', 'targets.json', 'timestamp.json']);
    for (const role of ['timestamp', 'snapshot', 'targets']) {
      assert.deepEqual(await readFile(join(world.metadataDir, `${role}.json`)), Buffer.from(world.repo.latest(role)), role);
    }
    assert.deepEqual(world.repo.requests, ['metadata/2.root.json', 'metadata/timestamp.json', 'metadata/2.snapshot.json', 'metadata/2.targets.json']);
  });
});

test('download stores the verified target once; a second download makes no target request', async () => {
  await withWorld(async (world) => {
    assert.equal((await world.run('--metadata-dir', world.metadataDir, 'init', join(world.dir, 'initial_root.json'))).code, 0);
    const first = await world.run(...world.downloadArgs('tools/app.bin'));
    assert.equal(first.code, 0, first.err);
    assert.deepEqual(await readdir(world.targetDir), ['tools%2Fapp.bin']);
    assert.equal(await readFile(join(world.targetDir, 'tools%2Fapp.bin'), 'utf8'), 'release one');
    world.repo.requests.length = 0;
    const second = await world.run(...world.downloadArgs('tools/app.bin'));
    assert.equal(second.code, 0, second.err);
    assert.ok(!world.repo.requests.some((path) => path.startsWith('targets/')), world.repo.requests.join(' '));
  });
});

test('every failure exits 1 with one line naming its code: tampered target, unknown target, bad usage, no root, unreachable repository', async () => {
  await withWorld(async (world) => {
    const noRoot = await world.run(...world.refreshArgs());
    assert.equal(noRoot.code, 1);
    assert.match(noRoot.err, /^sdc tuf-client: TUF_NO_TRUSTED_ROOT: .*\n$/);

    assert.equal((await world.run('--metadata-dir', world.metadataDir, 'init', join(world.dir, 'initial_root.json'))).code, 0);
    world.repo.artifacts.set('tools/app.bin', new TextEncoder().encode('release 1!!'));
    const tampered = await world.run(...world.downloadArgs('tools/app.bin'));
    assert.equal(tampered.code, 1);
    assert.match(tampered.err, /TUF_LENGTH_OR_HASH_MISMATCH/);
    assert.equal(tampered.err.split('\n').length, 2, 'one line');
    assert.deepEqual(await readdir(world.targetDir).catch(() => []), []);

    const unknown = await world.run(...world.downloadArgs('no/such/target'));
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /TUF_TARGET_NOT_FOUND/);

    for (const argv of [['--metadata-dir', world.metadataDir, '--no-such-option', 'refresh'], ['--metadata-dir', world.metadataDir],
      ['--metadata-dir', world.metadataDir, 'refresh'], ['--metadata-dir', world.metadataDir, 'init'], ['fly']]) {
      const usage = await world.run(...argv);
      assert.equal(usage.code, 1, `usage mistakes exit 1, not 2: ${argv.join(' ')}`);
      assert.match(usage.err, /CLI_USAGE/);
    }

    const unreachable = await world.run('--metadata-url', 'http://127.0.0.1:1/metadata', '--metadata-dir', world.metadataDir, 'refresh');
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.err, /TUF_DOWNLOAD_FAILED/);
    const jsonFiles = (await readdir(world.metadataDir)).filter((name) => name.endsWith('.json')).sort();
    assert.deepEqual(jsonFiles, ['root.json', 'snapshot.json', 'targets.json', 'timestamp.json'], 'only trusted metadata, nothing else ending in .json');
  });
});

test('expired repository metadata (now from the system clock) fails the refresh with TUF_EXPIRED', async () => {
  await withWorld(async (world) => {
    assert.equal((await world.run('--metadata-dir', world.metadataDir, 'init', join(world.dir, 'initial_root.json'))).code, 0);
    const refresh = await world.run(...world.refreshArgs());
    assert.equal(refresh.code, 1);
    assert.match(refresh.err, /TUF_EXPIRED/);
  }, { lifetimeMs: -1_000 });
});
