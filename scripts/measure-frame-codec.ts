// CPU per frame in core's session codec (issues 15 and 17): what a gateway spends in core for one
// received MAC'd HEARTBEAT (decode, MAC check, body check, the echo built and MAC'd) and one
// TELEMETRY (decode, MAC check, body check), and what an agent spends to build and MAC one
// TELEMETRY. The same functions the session ends call (core/protocol/session/codec.ts), on
// node:crypto's HMAC as the services use it. Not a test: a measurement to repeat before and after
// a change to the codec, in one sitting.
//
//   npx tsx scripts/measure-frame-codec.ts [--frames 50000] [--rounds 7] [--trees DIR,DIR]
//
// Each round runs every path over `frames` frames (distinct seq and id, made before the clock
// starts) and reports process.cpuUsage per frame; the median and the best of the rounds are printed.
// `--trees`: the codec of each checkout (e.g. a worktree of the commit before a change, and this
// one) in the same process, round by round alternating, so both see the same machine; the frames
// each tree makes must be byte-identical, or the script stops.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FrameAddress, FrameSigner } from '../core/protocol/session/codec.js';
import type { MessageBody } from '../core/protocol/messages/catalog.js';
import type { SessionMacKeys } from '../core/protocol/session/session-mac.js';
import { createNodeSessionKeyCrypto } from '../runtime/session-crypto-node.js';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';

const { values } = parseArgs({ options: { frames: { type: 'string' }, rounds: { type: 'string' }, trees: { type: 'string' } } });
const framesPerRound = Number(values.frames ?? 50_000);
const rounds = Number(values.rounds ?? 7);

const crypto = createNodeSessionKeyCrypto();
const provider = createNodeEd25519Provider();
const signer: FrameSigner = { kid: 'gateway:gw-1', seed: new Uint8Array(32).fill(7), provider };
const agentToGateway = new Uint8Array(32).fill(1);
const gatewayToAgent = new Uint8Array(32).fill(2);
const agentKeys: SessionMacKeys = { crypto, send: agentToGateway, receive: gatewayToAgent };
const gatewayKeys: SessionMacKeys = { crypto, send: gatewayToAgent, receive: agentToGateway };
const deviceId = 'dev-0123456789abcdef';
const sessionId = 's-0123456789abcdef0123456789';
const t0 = 1_796_000_000_000;
const heartbeat: MessageBody<'HEARTBEAT'> = { uptime_ms: 123_456, queue_depth: 0 };
const telemetry: MessageBody<'TELEMETRY'> = {
  sampled_at: t0, prev_hash: 'a'.repeat(64),
  metrics: { cpu_pct: 12.5, mem_pct: 41.25, disk_pct: 63, net_rx_bytes_per_sec: 10_240, net_tx_bytes_per_sec: 2_048 },
};

const address = (prefix: string, seq: number): FrameAddress => ({ id: `${prefix}${seq}`, deviceId, sessionId, seq, ts: t0 + seq });

type Codec = typeof import('../core/protocol/session/codec.js');
type Path = { name: string; run: (index: number) => unknown };

function agentFrames<T extends 'HEARTBEAT' | 'TELEMETRY'>(codec: Codec, type: T, body: MessageBody<T>): Uint8Array[] {
  return Array.from({ length: framesPerRound }, (_, seq) => codec.encodeMessage(type, body, address('a', seq), signer, agentKeys).bytes);
}

/** The gateway's calls per frame (connection-core.ts authenticate, gateway-connection.ts receive), without the replay guard and state machine. */
function paths(codec: Codec, heartbeats: Uint8Array[], samples: Uint8Array[]): Path[] {
  const receive = (bytes: Uint8Array) => codec.checkBody(codec.decodeAndVerify({
    bytes, expectDeviceId: deviceId, expectSessionId: sessionId, resolveKey: () => undefined, provider, mac: gatewayKeys,
  }));
  return [
    { name: 'gateway: HEARTBEAT received + echo built', run: (index) => {
      const message = receive(heartbeats[index]!);
      // The echo as the tree's gateway builds it (encodeDecodedBody since 2026-12-04: the body is not validated again).
      return 'encodeDecodedBody' in codec
        ? codec.encodeDecodedBody(message, address('g', index), signer, gatewayKeys).bytes
        : (codec as Codec).encodeMessage('HEARTBEAT', message.body as MessageBody<'HEARTBEAT'>, address('g', index), signer, gatewayKeys).bytes;
    } },
    { name: 'gateway: TELEMETRY received', run: (index) => receive(samples[index]!) },
    { name: 'agent: TELEMETRY built', run: (index) => codec.encodeMessage('TELEMETRY', telemetry, address('a', index), signer, agentKeys).bytes },
  ];
}

function cpuUsPerFrame(path: Path): number {
  const start = process.cpuUsage();
  let sink = 0;
  for (let index = 0; index < framesPerRound; index++) sink += path.run(index) === undefined ? 1 : 0;
  const used = process.cpuUsage(start);
  if (sink !== 0) throw new Error('a path returned nothing');
  return (used.user + used.system) / framesPerRound;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const sameBytes = (a: Uint8Array[], b: Uint8Array[]): boolean => a.length === b.length && a.every((frame, index) => Buffer.compare(frame, b[index]!) === 0);

const trees = (values.trees ?? '.').split(',').map((tree) => resolve(tree));
const codecs: Codec[] = [];
for (const tree of trees) codecs.push(await import(pathToFileURL(resolve(tree, 'core/protocol/session/codec.ts')).href) as Codec);
const framesByTree = codecs.map((codec) => ({ heartbeats: agentFrames(codec, 'HEARTBEAT', heartbeat), samples: agentFrames(codec, 'TELEMETRY', telemetry) }));
for (const frames of framesByTree.slice(1)) {
  if (!sameBytes(frames.heartbeats, framesByTree[0]!.heartbeats) || !sameBytes(frames.samples, framesByTree[0]!.samples)) throw new Error('the trees make different frames');
}
const runs = codecs.flatMap((codec, tree) => paths(codec, framesByTree[tree]!.heartbeats, framesByTree[tree]!.samples)
  .map((path) => ({ label: `${trees.length > 1 ? `${trees[tree]}: ` : ''}${path.name}`, path })));
const samples = new Map(runs.map((run) => [run.label, [] as number[]]));
for (const run of runs) cpuUsPerFrame(run.path); // warm-up: compiled code, not the interpreter, is measured
for (let round = 0; round < rounds; round++) for (const run of runs) samples.get(run.label)!.push(cpuUsPerFrame(run.path));
console.log(`frames per round ${framesPerRound}, rounds ${rounds}, node ${process.version}`);
for (const [label, values] of samples) {
  console.log(`${label.padEnd(60)} median ${median(values).toFixed(2).padStart(7)} µs/frame   best ${Math.min(...values).toFixed(2).padStart(7)}`);
}
