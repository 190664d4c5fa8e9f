import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { noticeFor, noticesMax, withNotice } from './notify.js';

describe('notifications from live events', () => {
  it('tells of an alert raised and of a command in a terminal state, not of progress or presence', () => {
    const alert = noticeFor({ type: 'alert', alert_id: 'al_1', device_id: 'lab-1', severity: 'critical', kind: 'tamper', message: 'case opened', at_ms: 5 });
    assert.deepEqual(alert, { id: 'alert:al_1', title: 'Alert: tamper on lab-1', body: 'case opened', href: '#/alerts', severity: 'critical', atMs: 5 });
    assert.equal(noticeFor({ type: 'alert', alert_id: 'al_2', device_id: null, severity: 'odd', kind: 'backpressure', message: 'm', at_ms: 1 })?.severity, 'info');
    assert.equal(noticeFor({ type: 'alert', alert_id: 'al_2', device_id: null, severity: 'warning', kind: 'backpressure', message: 'm', at_ms: 1 })?.title, 'Alert: backpressure');
    const done = noticeFor({ type: 'command', command_id: 'c 1', device_id: 'lab-1', state: 'succeeded', at_ms: 7 });
    assert.deepEqual([done?.title, done?.href, done?.severity], ['Command succeeded', '#/commands/c%201', 'info']);
    assert.equal(noticeFor({ type: 'command', command_id: 'c1', device_id: 'lab-1', state: 'failed', at_ms: 7 })?.severity, 'warning');
    assert.equal(noticeFor({ type: 'command', command_id: 'c1', device_id: 'lab-1', state: 'dead_lettered', at_ms: 7 })?.title, 'Command dead_lettered');
    for (const state of ['queued', 'sent', 'ack_received', 'executing']) assert.equal(noticeFor({ type: 'command', command_id: 'c1', device_id: 'd', state, at_ms: 1 }), undefined, state);
    assert.equal(noticeFor({ type: 'presence', device_id: 'd', online: false, gateway_id: 'g', at_ms: 1 }), undefined);
    assert.equal(noticeFor({ type: 'alert_acknowledged', alert_id: 'al_1', device_id: 'd', kind: 'k', acknowledged_by: 'ann', note: null, at_ms: 1 }), undefined);
  });

  it('keeps the newest first, drops a repeat and at most noticesMax', () => {
    const make = (i: number) => noticeFor({ type: 'alert', alert_id: `al_${i}`, device_id: 'd', severity: 'warning', kind: 'k', message: 'm', at_ms: i })!;
    let notices = withNotice([], make(1));
    notices = withNotice(notices, make(2));
    assert.deepEqual(notices.map((n) => n.id), ['alert:al_2', 'alert:al_1']);
    assert.equal(withNotice(notices, make(1)).length, 2);
    for (let i = 3; i < 40; i += 1) notices = withNotice(notices, make(i));
    assert.equal(notices.length, noticesMax);
    assert.equal(notices[0]!.id, 'alert:al_39');
  });
});
