import { encodeBusEntry, telemetryFramesLimits, type BusEntryData } from '../bus-contract/entries.js';
import { encodeEnvelope } from '../../core/protocol/envelope.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { DecodedMessage } from '../../core/protocol/session/codec.js';
import type { AppendBatcher } from './append-batcher.js';
import type { CommandRouter } from './command-router.js';
import type { DeviceSession } from './device-session.js';
import type { GatewayContext } from './gateway-context.js';
import { reportPolicyBundle } from './policy-bundle-push.js';
import { reportOta } from './ota-notice-push.js';

const textDecoder = new TextDecoder();

/**
 * Carries one authenticated device frame to where it belongs: telemetry to its stream, ACK and
 * RESULT to the command router, alerts to the events stream. The frame travels as received, so
 * the control plane can verify it again and the audit rests on the device's own bytes.
 */
export interface ForwardTargets {
  readonly context: GatewayContext;
  readonly router: CommandRouter;
  /** Appends to streamNames.telemetry (bounded by streamMaxLen.telemetry), batched across sessions. */
  readonly telemetry: AppendBatcher<object>;
  /**
   * The batcher packs TelemetryItems into telemetry_frames entries at its flush (decision 0023);
   * false: it takes each frame's encoded `telemetry` entry, as before.
   */
  readonly packsTelemetry: boolean;
}

/** One telemetry frame on its way to the bus: a `telemetry` entry's value. */
export type TelemetryItem = BusEntryData<'telemetry'>;

/**
 * A flush's telemetry frames, in order, as entries (decision 0023): runs of consecutive frames of
 * at most `framesPerEntryMax` frames and telemetryFramesLimits.frameBytesPerEntryMax bytes of frame
 * text each go as one telemetry_frames entry; a run of one frame, and a frame too large to share
 * an entry, go as the `telemetry` entry it always was (an older control plane reads those). The
 * order of the frames is kept, across entries too, so a session's frames reach the stream in order.
 */
export function packTelemetryFrames(items: readonly TelemetryItem[], framesPerEntryMax: number): Array<Record<string, string>> {
  const entries: Array<Record<string, string>> = [];
  let run: TelemetryItem[] = [];
  let runBytes = 0;
  const close = (): void => {
    if (run.length === 1) entries.push(encodeBusEntry('telemetry', run[0]!));
    else if (run.length > 1) entries.push(encodeBusEntry('telemetry_frames', { gateway_id: run[0]!.gateway_id, frames: run.map(framePart) }));
    run = [];
    runBytes = 0;
  };
  for (const item of items) {
    const bytes = Buffer.byteLength(item.frame);
    // One gateway per entry (every item of one batcher names the same gateway; checked, not assumed).
    if (run.length >= framesPerEntryMax || runBytes + bytes > telemetryFramesLimits.frameBytesPerEntryMax || (run.length > 0 && run[0]!.gateway_id !== item.gateway_id)) close();
    run.push(item);
    runBytes += bytes;
  }
  close();
  return entries;
}

const framePart = (item: TelemetryItem): BusEntryData<'telemetry_frames'>['frames'][number] => ({ device_id: item.device_id, received_at_ms: item.received_at_ms, frame: item.frame });

/** What forwardMessage returns for a frame that forwards nothing: one settled promise for all. */
const nothingToForward: Promise<void> = Promise.resolve();

/**
 * Not async: a HEARTBEAT returns a settled promise, and a TELEMETRY sample the promise of its
 * append batch (AppendBatcher.write), not an async function's promise awaiting it (issue 17: a
 * sample's forward made two promises for none of its own). The other types take forwardOther.
 */
export function forwardMessage(targets: ForwardTargets, session: DeviceSession, message: DecodedMessage, nowMs: number): Promise<void> {
  switch (message.type) {
    // Most frames are HEARTBEATs (two in three on the standard profile), which forward nothing: nothing to decode.
    case 'HEARTBEAT':
      return nothingToForward;
    // A batch is one entry, as its frame is one frame: the writer stores each of its samples (decision 0004, "Batches").
    case 'TELEMETRY':
    case 'TELEMETRY_BATCH': {
      const item: TelemetryItem = { device_id: session.deviceId, gateway_id: targets.context.options.gatewayId, received_at_ms: nowMs, frame: frameText(message) };
      // Packed with other sessions' frames at the flush (decision 0023), or its own entry now.
      return targets.telemetry.write(targets.packsTelemetry ? item : encodeBusEntry('telemetry', item));
    }
    default:
      return forwardOther(targets, session, message, nowMs);
  }
}

async function forwardOther({ context, router }: ForwardTargets, session: DeviceSession, message: DecodedMessage, nowMs: number): Promise<void> {
  const { gatewayId, logger } = context.options;
  switch (message.type) {
    case 'COMMAND_ACK':
      await router.onAck(session.deviceId, message.body as MessageBody<'COMMAND_ACK'>, frameText(message));
      break;
    case 'COMMAND_RESULT':
      await router.onResult(session.deviceId, message.body as MessageBody<'COMMAND_RESULT'>, frameText(message));
      break;
    case 'ALERT': {
      const alert = message.body as MessageBody<'ALERT'>;
      await context.report('alert', { device_id: session.deviceId, gateway_id: gatewayId, at_ms: nowMs, frame: frameText(message), severity: alert.severity, kind: alert.kind, message: alert.message });
      break;
    }
    case 'POLICY_BUNDLE_REPORT':
      await reportPolicyBundle(context, session.deviceId, message.body as MessageBody<'POLICY_BUNDLE_REPORT'>, frameText(message));
      break;
    case 'OTA_REPORT':
      await reportOta(context, session.deviceId, frameText(message), nowMs);
      break;
    case 'ERROR': {
      const error = message.body as MessageBody<'ERROR'>;
      logger.info({ device_id: session.deviceId, code: error.code, ref_id: error.ref_id }, 'device reported an error');
      break;
    }
    default:
      break;
  }
}

/**
 * The bytes the device sent (strict UTF-8 JSON, authenticated): passed on as they are, not encoded
 * again, and as the text the strict parser already decoded them to when the session end kept it.
 */
export function frameText(message: DecodedMessage): string {
  return message.text ?? textDecoder.decode(message.bytes ?? encodeEnvelope(message.envelope));
}
