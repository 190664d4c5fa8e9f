// Encrypted artifact uploads end to end (issue 10, docs/artifacts.md), on both store pairs: an
// operator asks a real agent (mock kernel) for a screenshot and its logs with EXEC_COLLECT_ARTIFACT,
// the agent gets its upload grant with its device certificate, seals to the control plane's
// artifact key, PUTs to the presigned URL, and its signed result carries the artifact's id,
// length and SHA-256; the operator's GET /v1/artifacts/{id} answers exactly the device's bytes.
// Then the refusals: a grant for a finished command, for another device's command, without a
// client certificate; a tampered object and another command's object in its place. The CLI case
// also rotates the artifact key (sdc artifact rotate-key, keys, remove-key) between two uploads.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CliIo } from '../../cli/command.js';
import { main } from '../../cli/main.js';
import { systemClock } from '../../runtime/system.js';
import { simulatedScreenshot } from '../../agent/ota/artifact-collector.js';
import type { RunningAgent } from '../../agent/agent-runtime.js';
import { uploadKey } from '../../server/ota/encrypted-artifacts.js';
import { createCommand, pairAgent, startE2e, storeTargets, waitOnline, waitTerminal, type CommandRecord, type E2eSystem } from './support/e2e-harness.js';

interface RawAnswer { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

/** One HTTPS request trusting only the deployment's root; optionally with a client certificate. */
function raw(system: E2eSystem, method: 'GET' | 'POST', path: string, options: { token?: string; body?: object; clientCert?: { certPem: string; keyPem: string } } = {}): Promise<RawAnswer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, system.apiUrl), {
      method, ca: system.materials.rootCaPem, minVersion: 'TLSv1.3',
      ...(options.clientCert === undefined ? {} : { cert: options.clientCert.certPem, key: options.clientCert.keyPem }),
      headers: {
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
        ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

function errorCode(answer: RawAnswer): string | undefined {
  try {
    return (JSON.parse(answer.body.toString('utf8')) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

interface AuditItem { kind: string; subject: string; payload: { code?: string } }

/** The whole audit log, page by page (a shared MySQL database holds other tests' entries too). */
async function auditEntries(system: E2eSystem): Promise<AuditItem[]> {
  const entries: AuditItem[] = [];
  let from: number | null = 1;
  while (from !== null) {
    const page: { items: AuditItem[]; next_from_seq: number | null } = await system.api('GET', `/v1/audit?from_seq=${from}&limit=500`);
    entries.push(...page.items);
    from = page.next_from_seq;
  }
  return entries;
}

interface ArtifactOutput { artifact_id: string; kind: string; content_type: string; sha256: string; length: number; plaintext_length: number }

function outputOf(record: CommandRecord): ArtifactOutput {
  return ((record as unknown as { result_frame: { body: { output: ArtifactOutput } } }).result_frame.body.output);
}

for (const target of storeTargets()) {
  describe(`encrypted artifact upload on ${target.name} stores`, () => {
    let system: E2eSystem;
    let device: string;
    let other: string;
    let agent: RunningAgent;
    let screenshot: CommandRecord;
    let logs: CommandRecord;

    before(async () => {
      system = await startE2e({ target });
      device = `art-${system.tag}-1`;
      other = `art-${system.tag}-2`;
      agent = await pairAgent(system, device);
      await pairAgent(system, other);
      await waitOnline(system, [device, other]);
    });

    after(async () => {
      await system?.stop();
    });

    it('sdc artifact request, list and get --out: the file holds exactly the device\'s screenshot, mode 0600', async () => {
      const home = await mkdtemp(join(tmpdir(), 'sdc-artifact-home-'));
      try {
        const password = 'artifact operator password';
        const operator = `art-op-${system.tag}`;
        // An admin: the shared MySQL database may hold another test's stored policy, in which the default policy's operator rule is not in force.
        await system.deployment.controlPlane!.auth.users.add({ name: operator, role: 'admin', password, nowMs: systemClock.nowMs() });
        await writeFile(join(home, 'ca.pem'), system.materials.rootCaPem);
        const sdc = async (argv: string[]) => {
          let stdout = '';
          let stderr = '';
          const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => `${password}\n`, env: { XDG_CONFIG_HOME: home } };
          return { code: await main(argv, io), stdout, stderr };
        };
        assert.equal((await sdc(['login', '--server', system.apiUrl, '--name', operator, '--ca', join(home, 'ca.pem'), '--password-stdin'])).code, 0);
        const requested = await sdc(['artifact', 'request', '--device', device, '--kind', 'screenshot', '--json']);
        assert.equal(requested.code, 0, requested.stderr);
        const id = (JSON.parse(requested.stdout) as { id: string }).id;
        assert.equal((await waitTerminal(system, id)).state, 'succeeded');
        const listed = await sdc(['artifact', 'list', '--device', device, '--json']);
        assert.equal(listed.code, 0, listed.stderr);
        assert.ok((JSON.parse(listed.stdout) as { items: Array<{ id: string; sha256: string | null }> }).items.some((item) => item.id === id && item.sha256 !== null));
        const out = join(home, 'shot.png');
        const got = await sdc(['artifact', 'get', id, '--out', out, '--json']);
        assert.equal(got.code, 0, got.stderr);
        const expected = Buffer.from(simulatedScreenshot(device));
        assert.deepEqual(await readFile(out), expected);
        assert.equal((await stat(out)).mode & 0o777, 0o600);
        assert.equal((JSON.parse(got.stdout) as { sha256: string }).sha256, createHash('sha256').update(expected).digest('hex'));
        const missing = await sdc(['artifact', 'get', 'c_nonexistent', '--out', join(home, 'none')]);
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /ARTIFACT_NOT_FOUND/);

        // Key rotation: the agent seals the next screenshot to the new key; the first still opens with the retired key until it is removed.
        const rotated = await sdc(['artifact', 'rotate-key', '--json']);
        assert.equal(rotated.code, 0, rotated.stderr);
        const { retired, current } = JSON.parse(rotated.stdout) as { retired: string; current: string };
        const keys = await sdc(['artifact', 'keys']);
        assert.equal(keys.stdout, `${current}\tcurrent\n${retired}\tretired\n`);
        const second = (JSON.parse((await sdc(['artifact', 'request', '--device', device, '--kind', 'screenshot', '--json'])).stdout) as { id: string }).id;
        assert.equal((await waitTerminal(system, second)).state, 'succeeded');
        const store = system.deployment.controlPlane!.blobStore;
        const headerKeyId = async (commandId: string) => {
          for await (const chunk of (await store.read(uploadKey({ deviceId: device, commandId })))!) return Buffer.from(chunk).subarray(5, 13).toString('hex');
          return '';
        };
        assert.deepEqual([await headerKeyId(id), await headerKeyId(second)], [retired, current]);
        for (const artifactId of [id, second]) {
          assert.equal((await sdc(['artifact', 'get', artifactId, '--out', out])).code, 0);
          assert.deepEqual(await readFile(out), expected);
        }
        assert.equal((await sdc(['artifact', 'remove-key', retired])).code, 0);
        const gone = await sdc(['artifact', 'get', id, '--out', join(home, 'none')]);
        assert.equal(gone.code, 1);
        assert.match(gone.stderr, /ARTIFACT_KEY_UNKNOWN/);
        assert.equal((await sdc(['artifact', 'get', second, '--out', out])).code, 0);
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    });

    it('a screenshot and the logs: sealed, uploaded by presigned PUT, the result carries id, length and digest; the operator gets exactly the bytes', async () => {
      screenshot = await waitTerminal(system, (await createCommand(system, device, 'EXEC_COLLECT_ARTIFACT', { kind: 'screenshot' })).id);
      assert.equal(screenshot.state, 'succeeded', JSON.stringify(screenshot));
      const shot = outputOf(screenshot);
      assert.equal(shot.artifact_id, screenshot.id);
      assert.equal(shot.content_type, 'image/png');
      const expected = Buffer.from(simulatedScreenshot(device));
      assert.equal(shot.plaintext_length, expected.length);
      assert.match(shot.sha256, /^[0-9a-f]{64}$/);
      // What the store holds is the sealed object the result describes, not the plaintext.
      const stored: Buffer[] = [];
      for await (const chunk of (await system.deployment.controlPlane!.blobStore.read(uploadKey({ deviceId: device, commandId: screenshot.id })))!) stored.push(Buffer.from(chunk));
      const sealed = Buffer.concat(stored);
      assert.equal(sealed.length, shot.length);
      assert.equal(createHash('sha256').update(sealed).digest('hex'), shot.sha256);
      assert.equal(sealed.indexOf(expected.subarray(100, 164)), -1);

      const download = await raw(system, 'GET', `/v1/artifacts/${screenshot.id}`, { token: system.token });
      assert.equal(download.status, 200, download.body.toString('utf8').slice(0, 300));
      assert.equal(download.headers['content-type'], 'application/octet-stream');
      assert.deepEqual(download.body, expected);

      logs = await waitTerminal(system, (await createCommand(system, device, 'EXEC_COLLECT_ARTIFACT', { kind: 'logs' })).id);
      assert.equal(logs.state, 'succeeded', JSON.stringify(logs));
      const logBytes = await raw(system, 'GET', `/v1/artifacts/${logs.id}`, { token: system.token });
      assert.equal(logBytes.status, 200);
      assert.equal(logBytes.body.length, outputOf(logs).plaintext_length);
      // The agent's journal, which names the screenshot command it ran before.
      assert.ok(logBytes.body.toString('utf8').includes(screenshot.id), 'the logs name the earlier command');

      const list = await system.api<{ items: Array<{ id: string; sha256: string | null; kind: string; device_id: string }> }>('GET', `/v1/artifacts?device_id=${device}`);
      // Newest first (the CLI test's screenshot came before these two).
      assert.deepEqual(list.items.slice(0, 2).map((item) => [item.id, item.kind, item.sha256]), [[logs.id, 'logs', outputOf(logs).sha256], [screenshot.id, 'screenshot', shot.sha256]]);

      const kinds = (await auditEntries(system)).filter((entry) => entry.subject === `artifact:${screenshot.id}`).map((entry) => entry.kind);
      assert.ok(kinds.includes('artifact.upload_granted') && kinds.includes('artifact.downloaded'), kinds.join(','));
    });

    it('upload grants are refused: no client certificate, a finished command, another device\'s command', async () => {
      const identity = agent.identity;
      const clientCert = { certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem };
      const noCert = await raw(system, 'POST', `/v1/devices/${device}/artifact-uploads`, { body: { command_id: logs.id, sealed_length: 4096 } });
      assert.equal(noCert.status, 401, noCert.body.toString('utf8'));
      assert.equal(errorCode(noCert), 'API_CLIENT_CERT_REQUIRED');
      const finished = await raw(system, 'POST', `/v1/devices/${device}/artifact-uploads`, { body: { command_id: logs.id, sealed_length: 4096 }, clientCert });
      assert.equal(errorCode(finished), 'ARTIFACT_UPLOAD_BINDING', finished.body.toString('utf8'));
      assert.equal(finished.status, 403);
      // This device's certificate, asking under the other device's id: refused before any command is looked at.
      const otherId = await raw(system, 'POST', `/v1/devices/${other}/artifact-uploads`, { body: { command_id: logs.id, sealed_length: 4096 }, clientCert });
      assert.equal(errorCode(otherId), 'API_CLIENT_CERT_DEVICE_MISMATCH', otherId.body.toString('utf8'));
      // The other device asking for this device's command.
      const otherAgent = system.agents.get(other)!;
      const otherCert = { certPem: otherAgent.identity.certPem + otherAgent.identity.chainPem, keyPem: otherAgent.identity.keyPem };
      const foreign = await raw(system, 'POST', `/v1/devices/${other}/artifact-uploads`, { body: { command_id: logs.id, sealed_length: 4096 }, clientCert: otherCert });
      assert.equal(errorCode(foreign), 'ARTIFACT_UPLOAD_BINDING', foreign.body.toString('utf8'));
    });

    it('a tampered object and another command\'s object in its place are refused; the refusals are audited', async () => {
      const store = system.deployment.controlPlane!.blobStore;
      const read = async (commandId: string) => {
        const chunks: Buffer[] = [];
        for await (const chunk of (await store.read(uploadKey({ deviceId: device, commandId })))!) chunks.push(Buffer.from(chunk));
        return Buffer.concat(chunks);
      };
      const original = await read(screenshot.id);
      const tampered = Buffer.from(original);
      tampered[original.length - 40] = tampered[original.length - 40]! ^ 0x01;
      await store.put(uploadKey({ deviceId: device, commandId: screenshot.id }), [tampered], { bytesMax: original.length });
      const refused = await raw(system, 'GET', `/v1/artifacts/${screenshot.id}`, { token: system.token });
      assert.equal(refused.status, 422, refused.body.toString('utf8'));
      assert.equal(errorCode(refused), 'OTA_ARTIFACT_DECRYPT_FAILED');

      // The logs' sealed object (sealed for the logs command) replayed as the screenshot's.
      const replayed = await read(logs.id);
      await store.put(uploadKey({ deviceId: device, commandId: screenshot.id }), [replayed], { bytesMax: replayed.length });
      const replay = await raw(system, 'GET', `/v1/artifacts/${screenshot.id}`, { token: system.token });
      assert.equal(errorCode(replay), 'OTA_UPLOAD_DIGEST_MISMATCH', replay.body.toString('utf8'));

      // Put back, it opens again: the refusals were about the bytes, not a broken artifact record.
      await store.put(uploadKey({ deviceId: device, commandId: screenshot.id }), [original], { bytesMax: original.length });
      const again = await raw(system, 'GET', `/v1/artifacts/${screenshot.id}`, { token: system.token });
      assert.equal(again.status, 200);
      assert.deepEqual(again.body, Buffer.from(simulatedScreenshot(device)));

      const refusals = (await auditEntries(system)).filter((entry) => entry.subject === `artifact:${screenshot.id}` && entry.kind === 'artifact.download_refused').map((entry) => entry.payload.code);
      assert.deepEqual(refusals.sort(), ['OTA_ARTIFACT_DECRYPT_FAILED', 'OTA_UPLOAD_DIGEST_MISMATCH']);
    });
  });
}
