import type { CommandView } from '../../../server/control-plane/commands.js';

/**
 * An EXEC_COLLECT_ARTIFACT command as the artifact service reads it from the command store, for
 * tests that fake that store: in `state`, with a device-signed result carrying `output` when given.
 */
export function artifactCommandView(options: {
  id: string; state: CommandView['state']; deviceId?: string; kind?: string; output?: Record<string, unknown>; nowMs?: number;
}): CommandView {
  const { id, state, deviceId = 'dev-1', kind = 'screenshot', output, nowMs = Date.now() } = options;
  return {
    id, device_id: deviceId, opcode: 'EXEC_COLLECT_ARTIFACT', args: { kind }, state, device_seq: 1, created_by: 'alice', created_at_ms: nowMs,
    updated_at_ms: nowMs, expires_at_ms: nowMs + 600_000, attempts: 1, gateway_id: 'gw-1', signed: null,
    result_frame: output === undefined ? null : { type: 'COMMAND_RESULT', body: { command_id: id, status: 'succeeded', output } } as never,
  };
}
