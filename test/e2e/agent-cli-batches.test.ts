import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeBusEntry } from '../../server/bus-contract/entries.js';
import { streamNames } from '../../server/bus-contract/streams.js';
import { agentDir, eventually, startE2e, type E2eSystem } from './support/e2e-harness.js';

const sdcBin = fileURLToPath(new URL('../../bin/sdc.js', import.meta.url));

/**
 * Decision 0004, "Batches": `sdc agent --telemetry-samples-per-frame N --telemetry-batch-delay D`
 * (the real device agent's command line, in a process of its own) sends TELEMETRY_BATCH frames to
 * a real gateway. The options' refusals: cli/commands/agent-telemetry-batch.test.ts.
 */
describe('sdc agent with telemetry batches, through the command line, against a real gateway', () => {
  let system: E2eSystem;
  let child: ChildProcess | undefined;

  before(async () => {
    system = await startE2e({ target: { name: 'embedded' } });
  });
  after(async () => {
    if (child !== undefined && child.exitCode === null) child.kill('SIGKILL');
    await system?.stop();
  });

  it('a gateway receives TELEMETRY_BATCH frames of the asked samples, each sample stored as its own row', async () => {
    const deviceId = `cli-batch-${system.tag}`;
    const { token } = await system.api<{ token: string }>('POST', `/v1/devices/${deviceId}/pairing-tokens`, {});
    const caFile = join(system.dataDir, 'ca.pem');
    await writeFile(caFile, system.materials.rootCaPem);
    const samplesPerFrame = 4;
    // An hour's delay: a batch goes only once it holds its 4 samples, so every frame has exactly 4.
    child = spawn(process.execPath, [
      sdcBin, 'agent', '--dir', agentDir(system, deviceId), '--server', system.apiUrl, '--device', deviceId, '--pairing-token', token, '--ca', caFile,
      '--kernel', 'mock', '--telemetry-interval-ms', '100', '--telemetry-samples-per-frame', String(samplesPerFrame), '--telemetry-batch-delay', '1h',
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SDC_LOG_LEVEL: 'warn' } });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = once(child, 'exit');

    const framesOf = async () => (await system.deployment.stores.bus.range(streamNames.telemetry, { count: 1_000 }))
      .map((entry) => decodeBusEntry(entry.fields))
      .flatMap((decoded) => (decoded.kind === 'telemetry' && decoded.data.device_id === deviceId ? [JSON.parse(decoded.data.frame) as { type: string; body: { samples?: unknown[] } }] : []));
    // Samples taken before the session was ready are sent at AUTH_ACK whatever their number (a lone
    // one as TELEMETRY, decision 0004 "Batches"); every later frame holds exactly the asked 4.
    const fullBatches = (frames: Array<{ type: string; body: { samples?: unknown[] } }>) => frames.filter((frame) => frame.type === 'TELEMETRY_BATCH' && frame.body.samples?.length === samplesPerFrame).length;
    const frames = await eventually(`two full telemetry batches from ${deviceId} (agent stderr: ${stderr.slice(-2_000)})`, async () => {
      const seen = await framesOf();
      return fullBatches(seen) >= 2 ? seen : undefined;
    });
    for (const frame of frames) {
      const samples = frame.type === 'TELEMETRY' ? 1 : frame.body.samples?.length ?? 0;
      assert.ok((frame.type === 'TELEMETRY' || frame.type === 'TELEMETRY_BATCH') && samples >= 1 && samples <= samplesPerFrame, JSON.stringify(frames.map((f) => [f.type, f.body.samples?.length])));
    }
    // At most one frame is not a full batch: the remainder of the AUTH_ACK flush (the batch delay is an hour).
    assert.ok(frames.length - fullBatches(frames) <= 1, JSON.stringify(frames.map((f) => [f.type, f.body.samples?.length])));
    const samplesSent = frames.reduce((sum, frame) => sum + (frame.type === 'TELEMETRY' ? 1 : frame.body.samples!.length), 0);
    const rows = await eventually('the samples of those frames stored, each as its own row', async () => {
      const answer = await system.api<{ items: unknown[] }>('GET', `/v1/devices/${deviceId}/telemetry?limit=100`);
      return answer.items.length >= samplesSent ? answer.items : undefined;
    });
    assert.ok(rows.length >= samplesSent);

    child.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, stderr);
  });
});
