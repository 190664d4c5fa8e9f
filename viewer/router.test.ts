import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRoute, routeHref, type Route } from './router.js';

describe('viewer routes', () => {
  it('round-trips every route through its href', () => {
    const routes: Route[] = [
      { view: 'fleet' }, { view: 'device', deviceId: 'lab-01' }, { view: 'command', commandId: 'cmd_01' },
      { view: 'compose', deviceId: 'lab-01' }, { view: 'compose', deviceId: undefined }, { view: 'audit' }, { view: 'research' },
      { view: 'alerts' }, { view: 'approvals' }, { view: 'dead-letters', deviceId: undefined }, { view: 'dead-letters', deviceId: 'lab-01' }, { view: 'releases' },
    ];
    for (const route of routes) assert.deepEqual(parseRoute(routeHref(route)), route);
  });

  it('falls back to the fleet for unknown, empty, over-long or badly encoded paths', () => {
    for (const hash of ['', '#', '#/nope', '#/devices', `#/devices/${'a'.repeat(129)}`, '#/devices/%E0%A4%A', '#/commands/a b']) {
      assert.deepEqual(parseRoute(hash), { view: 'fleet' }, hash);
    }
    assert.deepEqual(parseRoute('#/compose?device=<script>'), { view: 'compose', deviceId: undefined });
    assert.deepEqual(parseRoute('#/dead-letters?device=a%20b'), { view: 'dead-letters', deviceId: undefined });
  });
});
