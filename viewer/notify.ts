/**
 * What the console tells the operator without being asked (issue 13, the mobile app's push role):
 * an alert raised, a command finished. Pure: a live event in, a notice (or nothing) out. The app
 * shows notices in the page and, when the browser allows it, as system notifications. A notice's
 * title and body are shown as they are, in both places: the device's and the server's words in
 * them went through visibleText here.
 */
import { commandTerminalStates } from '../core/protocol/command-machine.js';
import type { LiveEvent } from './live.js';
import { visibleText as v } from './visible-text.js';

export interface Notice {
  readonly id: string;
  readonly title: string;
  readonly body: string;
  readonly href: string;
  readonly severity: 'info' | 'warning' | 'critical';
  readonly atMs: number;
}

/** States after which a command does nothing more, from the core's command machine. */
const terminalCommandStates: ReadonlySet<string> = new Set(commandTerminalStates);

/** The in-page list keeps this many notices, newest first: a flood of alerts cannot grow the page without bound. */
export const noticesMax = 20;

export function noticeFor(event: LiveEvent): Notice | undefined {
  if (event.type === 'alert') {
    const severity = event.severity === 'critical' ? 'critical' : event.severity === 'warning' ? 'warning' : 'info';
    return {
      id: `alert:${event.alert_id}`, title: `Alert: ${v(event.kind)}${event.device_id ? ` on ${v(event.device_id)}` : ''}`, body: v(event.message),
      href: '#/alerts', severity, atMs: event.at_ms,
    };
  }
  if (event.type === 'command' && terminalCommandStates.has(event.state)) {
    return {
      id: `command:${event.command_id}:${event.state}`, title: `Command ${v(event.state)}`, body: `${v(event.command_id)} on ${v(event.device_id)}`,
      href: `#/commands/${encodeURIComponent(event.command_id)}`, severity: event.state.startsWith('succeeded') ? 'info' : 'warning', atMs: event.at_ms,
    };
  }
  return undefined;
}

/** The notices with this one first, a repeat (same id) dropped, at most `noticesMax`. */
export function withNotice(notices: readonly Notice[], notice: Notice): Notice[] {
  if (notices.some((n) => n.id === notice.id)) return [...notices];
  return [notice, ...notices].slice(0, noticesMax);
}
