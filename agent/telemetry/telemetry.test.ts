import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateMessageBody } from '../../core/protocol/messages/validate.js';
import { SeededRandom } from '../../core/random/prng.js';
import { createHostMetricsSource, parseNetDev } from './host-metrics.js';
import { createSyntheticMetricsSource } from './synthetic-metrics.js';

const netDev = (rx: number, tx: number) => `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 999999     10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0
  eth0: ${rx}     10    0    0    0     0          0         0   ${tx}      10    0    0    0     0       0          0
`;

describe('telemetry sources', () => {
  it('parses /proc/net/dev without loopback', () => {
    assert.deepEqual(parseNetDev(netDev(1000, 500)), { rx: 1000, tx: 500 });
  });

  it('host metrics: rates from counter deltas over clock time, process count from /proc, schema-valid', async () => {
    const proc = await mkdtemp(join(tmpdir(), 'sdc-proc-'));
    try {
      await mkdir(join(proc, 'net'));
      for (const pid of ['1', '42', '977']) await mkdir(join(proc, pid));
      await mkdir(join(proc, 'sys'));
      await writeFile(join(proc, 'net', 'dev'), netDev(1000, 500));
      let nowMs = 1_000_000;
      const source = createHostMetricsSource({ clock: { nowMs: () => nowMs }, dataDir: proc, procDir: proc });
      const first = await source.sample();
      assert.equal(first.net_rx_bytes_per_sec, 0);
      assert.equal(first.process_count, 3);
      await writeFile(join(proc, 'net', 'dev'), netDev(5000, 2500));
      nowMs += 2_000;
      const second = await source.sample();
      assert.equal(second.net_rx_bytes_per_sec, 2000);
      assert.equal(second.net_tx_bytes_per_sec, 1000);
      for (const metrics of [first, second]) {
        validateMessageBody('TELEMETRY', { sampled_at: nowMs, metrics });
        assert.ok(metrics.disk_pct > 0 && metrics.mem_pct > 0);
      }
    } finally {
      await rm(proc, { recursive: true, force: true });
    }
  });

  it('host metrics without /proc report 0 network and no process count', async () => {
    const source = createHostMetricsSource({ clock: { nowMs: () => 0 }, dataDir: tmpdir(), procDir: join(tmpdir(), 'no-such-proc-dir') });
    const metrics = await source.sample();
    assert.equal(metrics.net_rx_bytes_per_sec, 0);
    assert.equal(metrics.process_count, undefined);
  });

  it('synthetic metrics replay from the seed and stay in range', async () => {
    const run = async (seed: number) => {
      const source = createSyntheticMetricsSource({ random: new SeededRandom(seed), baseLoadPct: 95, stepPctMax: 20 });
      const out = [];
      for (let i = 0; i < 200; i++) out.push(await source.sample());
      return out;
    };
    const a = await run(3);
    assert.deepEqual(a, await run(3));
    assert.notDeepEqual(a, await run(4));
    for (const metrics of a) validateMessageBody('TELEMETRY', { sampled_at: 0, metrics });
  });
});
