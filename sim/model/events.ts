/**
 * Kinds of model events and what their four int32 arguments mean (a, b, c, d). Frames on the
 * wire carry the link id (c) and their sequence number in that direction (d), so a frame of a
 * closed link, or one that arrives behind a later frame, is recognised on arrival.
 */
export const Ev = {
  // sessions and presence (sim/model/sessions.ts)
  connect: 1, //            a agent, b connect epoch
  challengeAtAgent: 2, //   a agent, c link, d seq
  authAtGateway: 3, //      a agent, c link, d seq
  authAckAtAgent: 4, //     a agent, c link, d seq
  heartbeatTimer: 5, //     a agent, c link
  heartbeatAtGateway: 6, // a agent, b heartbeat sent at (ms), c link, d seq
  echoAtAgent: 7, //        a agent, b heartbeat sent at (ms), c link, d seq
  gatewaySilence: 8, //     a agent, c link
  agentAuthTimeout: 9, //   a agent, c link
  gatewayAuthTimeout: 10, // a agent, c link
  closedAtAgent: 11, //     a agent, c link
  closedAtGateway: 12, //   a agent, c link
  errorAtAgent: 13, //      a agent, c link, d seq (an ERROR frame answering a refused frame)
  errorAtGateway: 14, //    a agent, c link, d seq
  boot: 15, //              a agent, b boot epoch at the crash
  comeBack: 16, //          a agent, b churn epoch
  // telemetry (sim/model/telemetry.ts)
  telemetryTimer: 20, //    a agent, b boot epoch
  telemetryAtGateway: 21, // a agent, b sample number (batches: frame number), c link, d seq
  telemetryBatchTimer: 22, // a agent, b batch epoch
  // commands (control-plane.ts, gateway-router.ts, agent-commands.ts, workload.ts)
  commandTick: 30,
  deliveryAtAgent: 31, //   a agent, b command, c link, d seq
  ackAtGateway: 32, //      a agent, b command, c link, d seq (stage received)
  startAtGateway: 33, //    a agent, b command, c link, d seq (stage executing)
  resultAtGateway: 34, //   a agent, b command, c link, d seq
  ackTimeout: 35, //        a command, b delivery epoch
  deliveryRetry: 36, //     a command, b delivery epoch
  reportRetry: 37, //       a command
  eventRetry: 38, //        a partition key: the agent (events) or agents + agent (telemetry), blocked by a failed handler
  expirySweep: 39,
  redeliverySweep: 40,
  executionDone: 41, //     a agent, b command, c boot epoch
  entryAtGateway: 42, //    a gateway, b command (dispatchServiceMs > 0)
  reportAtControlPlane: 43, // a agent, b command, c report kind, d at (ms)
  // faults (sim/model/faults.ts)
  crashTick: 50,
  churnTick: 51,
  gatewayCrash: 52, //      a gateway, b down ms
  gatewayStart: 53, //      a gateway
  peerReclaim: 54, //       a gateway, b crash epoch
  // the rollout (sim/model/rollout.ts), only in runs whose scenario has `ota`
  otaStart: 60,
  otaSweep: 61,
  otaNoticeAtAgent: 62, //  a agent, b health nonce (0: none), c link, d seq
  otaReportAtGateway: 63, // a agent, b report code | nonce << 16, c link, d seq
  otaPaceDone: 64, //       a agent, b device epoch
  otaDownloadEnd: 65, //    a agent, b device epoch, c 1 complete / 0 cut
  otaDownloadRetry: 66, //  a agent, b device epoch
  otaRebootDone: 67, //     a agent, b device epoch
  otaRecover: 68, //        a agent, b device epoch, c report code + 1 of the call the crash came after (0: before it), d state index
  otaResend: 69, //         a agent, b re-send epoch
} as const;

export const eventNames: ReadonlyMap<number, string> = new Map(Object.entries(Ev).map(([name, kind]) => [kind, name]));

/** What a gateway reports to the control plane on sdc:events (or the telemetry stream). */
export const Report = {
  deliver: 1,
  ack: 2,
  start: 3,
  succeeded: 4,
  failed: 5,
  rejected: 6,
  deadLetter: 7,
  requeue: 8,
  presenceOnline: 9,
  presenceOffline: 10,
  telemetry: 11,
} as const;
