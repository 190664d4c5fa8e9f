import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { TelemetryChain } from './telemetry-chain.js';

const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const metrics = { cpu_pct: 1, mem_pct: 1, disk_pct: 1, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: 0 };
const frame = (n: number): Uint8Array => new TextEncoder().encode(`frame ${n}`);
const body = (prevHash?: string) => ({ sampled_at: 1, metrics, ...(prevHash === undefined ? {} : { prev_hash: prevHash }) });

describe('TelemetryChain', () => {
  it('anchors on the first sample, accepts each that names its predecessor, refuses a wrong or missing prev_hash', () => {
    const chain = new TelemetryChain(sha256Hex);
    assert.equal(chain.check(frame(0), body('ab'.repeat(32))), undefined, 'the first names a frame of an earlier session');
    assert.equal(chain.check(frame(1), body(sha256Hex(frame(0)))), undefined);
    assert.equal(chain.check(frame(2), body('00'.repeat(32)))?.code, 'PROTO_TELEMETRY_CHAIN_BROKEN');
    assert.equal(chain.check(frame(3), body(sha256Hex(frame(2)))), undefined, 'the refused frame is the link the agent chained on');
    assert.equal(chain.check(frame(4), body())?.code, 'PROTO_TELEMETRY_CHAIN_BROKEN', 'only the first of a session may omit it');
    assert.equal(chain.check(frame(5), body(sha256Hex(frame(3))))?.code, 'PROTO_TELEMETRY_CHAIN_BROKEN', 'a skipped frame breaks the chain');
  });
});
