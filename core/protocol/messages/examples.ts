import type { MessageBody, MessageType } from './catalog.js';

/**
 * One valid body per message type. Used by the docs generator (as the example shown for each
 * message) and by tests (as the starting point for mutations). Not used at run time.
 */
const sig = { alg: 'Ed25519', kid: 'cp-2026-11', value: 'A'.repeat(86) } as const;
const nonce = 'n'.repeat(43);

export const exampleBodies: { [T in MessageType]: MessageBody<T> } = {
  AUTH_CHALLENGE: { nonce, gateway_id: 'gw-1', server_time_ms: 1_764_000_000_000 },
  AUTH: { nonce, agent_version: '0.1.0', last_command_seq: 41 },
  AUTH_ACK: { session_id: 'sess_7f3a', session_token: 'eyJ...', heartbeat_interval_ms: 10_000, seq_start: 0, server_time_ms: 1_764_000_000_050, clock_offset_ms: -1_250 },
  AUTH_ERROR: { code: 'TRUST_CERT_REVOKED', message: 'device certificate is revoked' },
  HEARTBEAT: { uptime_ms: 3_600_000, queue_depth: 0 },
  TELEMETRY: {
    sampled_at: 1_764_000_000_000,
    metrics: { cpu_pct: 12.5, mem_pct: 40, disk_pct: 71.2, net_rx_bytes_per_sec: 2048, net_tx_bytes_per_sec: 512, process_count: 183 },
  },
  TELEMETRY_BATCH: {
    samples: [
      { sampled_at: 1_764_000_000_000, metrics: { cpu_pct: 12.5, mem_pct: 40, disk_pct: 71.2, net_rx_bytes_per_sec: 2048, net_tx_bytes_per_sec: 512 } },
      { sampled_at: 1_764_000_000_100, metrics: { cpu_pct: 13, mem_pct: 40, disk_pct: 71.2, net_rx_bytes_per_sec: 1900, net_tx_bytes_per_sec: 480 } },
    ],
    prev_hash: 'c'.repeat(64),
  },
  TELEMETRY_ACK: { through_seq: 42 },
  COMMAND_DELIVERY: {
    command: {
      id: 'cmd_01', device_id: 'dev-0001', opcode: 'EXEC_GET_PROCESS_LIST', args: { limit: 50 },
      issued_at: 1_764_000_000_000, expires_at: 1_764_000_300_000, device_seq: 42, issuer: 'control-plane', sig,
    },
    attempt: 1,
  },
  COMMAND_ACK: { command_id: 'cmd_01', device_seq: 42, stage: 'received' },
  COMMAND_RESULT: { command_id: 'cmd_01', device_seq: 42, status: 'succeeded', output: { processes: [] }, finished_at: 1_764_000_000_900 },
  POLICY_BUNDLE: {
    signed: {
      bundle: {
        format: 1, device_id: 'dev-0001', version: 7, issued_at: 1_764_000_000_000, expires_at: 1_764_604_800_000, device_tags: ['lab'],
        policy: { version: 1, revision: 7, rules: [{ id: 'no-updates-lab', effect: 'deny', roles: '*', opcodes: ['EXEC_STAGE_UPDATE'], devices: { tags: ['lab'] } }] },
      },
      sig,
    },
  },
  POLICY_BUNDLE_REPORT: { version: 6, status: 'refused', held_version: 7, error: { code: 'POLICY_BUNDLE_VERSION_STALE', message: 'policy bundle version 6 is older than the held version 7' } },
  OTA_NOTICE: {
    execution_id: 'x_91', rollout_id: 'r_7', wave: 0,
    director: { signed: { type: 'ota_director', device_id: 'dev-0001', rollout_id: 'r_7', wave: 0, execution_id: 'x_91' }, signature: { key_id: 'cp-2026-11', sig: 'A'.repeat(86) } },
    kernel_commands: {
      stage: { id: 'x_91-stage', device_id: 'dev-0001', opcode: 'EXEC_STAGE_UPDATE', args: { version: '2.4.0', sha256: 'a'.repeat(64), size_bytes: 1_048_576 }, issued_at: 1_764_000_000_000, expires_at: 1_764_010_800_000, device_seq: 43, issuer: 'control-plane', sig },
      commit: { id: 'x_91-commit', device_id: 'dev-0001', opcode: 'EXEC_COMMIT_UPDATE', args: { version: '2.4.0' }, issued_at: 1_764_000_000_000, expires_at: 1_764_010_800_000, device_seq: 44, issuer: 'control-plane', sig },
      rollback: { id: 'x_91-rollback', device_id: 'dev-0001', opcode: 'EXEC_ROLLBACK_UPDATE', args: {}, issued_at: 1_764_000_000_000, expires_at: 1_764_010_800_000, device_seq: 45, issuer: 'control-plane', sig },
    },
    health_nonce: nonce,
    artifact_url: 'https://cp.example:8080/v1/blobs/sdc/ota/artifacts/aaaa?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900&X-Amz-Signature=bbbb',
    cancel: false,
    notice_state: {
      signed: { type: 'ota_notice_state', device_id: 'dev-0001', rollout_id: 'r_7', execution_id: 'x_91', seq: 1, cancel: false, health_nonce: nonce },
      signature: { key_id: 'cp-2026-11', sig: 'A'.repeat(86) },
    },
  },
  OTA_REPORT: { execution_id: 'x_91', event: 'version_report', nonce, release_counter: 42, healthy: true, report_id: 'r_x_91_9' },
  ALERT: { severity: 'warning', kind: 'risk_score', message: 'risk score 83 above threshold 80', risk_score: 83 },
  ERROR: { code: 'PROTO_REPLAY', message: 'seq 7 was already accepted', ref_id: 'f_19' },
};
