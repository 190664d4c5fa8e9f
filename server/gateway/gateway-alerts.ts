import { clockOffsetLimits } from '../../core/protocol/clock-offset.js';
import type { GatewayContext } from './gateway-context.js';

/** The device an alert is about (a DeviceSession). */
export interface AlertSubject {
  readonly deviceId: string;
}

/** Longest alert message the events stream carries from the gateway. */
const alertMessageCharsMax = 1024;

/** A gateway-raised alert about the device (no device frame): never throws, a failure is logged. */
export async function reportAlert(context: GatewayContext, subject: AlertSubject, kind: string, message: string): Promise<void> {
  try {
    await context.report('alert', {
      device_id: subject.deviceId, gateway_id: context.options.gatewayId, at_ms: context.nowMs(), severity: 'warning', kind, message: message.slice(0, alertMessageCharsMax),
    });
  } catch (error) {
    context.options.logger.error({ err: error, device_id: subject.deviceId, kind, trace_id: context.traceId() }, 'alert not reported');
  }
}

/**
 * A `clock_skew` alert carrying the offset (the control plane records it on the device): a
 * warning when the session corrects it, critical when AUTH was refused for it. Never throws.
 */
export async function reportClockOffset(context: GatewayContext, subject: AlertSubject, clockOffsetMs: number, outcome: 'corrected' | 'refused'): Promise<void> {
  const { alertMs, offsetMsMax } = clockOffsetLimits;
  const message = outcome === 'corrected'
    ? `device clock is ${clockOffsetMs} ms off the gateway's (alert above ${alertMs} ms); corrected for this session`
    : `device clock is ${clockOffsetMs} ms off the gateway's, beyond the ${offsetMsMax} ms a session tolerates; AUTH refused`;
  try {
    await context.report('alert', {
      device_id: subject.deviceId, gateway_id: context.options.gatewayId, at_ms: context.nowMs(), severity: outcome === 'corrected' ? 'warning' : 'critical',
      kind: 'clock_skew', message, clock_offset_ms: clockOffsetMs,
    });
  } catch (error) {
    context.options.logger.error({ err: error, device_id: subject.deviceId, trace_id: context.traceId() }, 'clock_skew alert not reported');
  }
}
