import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { ServiceMetrics } from '../../server/observability/metrics.js';

/**
 * The Grafana dashboard names only metrics the code registers: a renamed metric would leave an
 * empty panel that nobody notices until an incident.
 */
interface Panel { title: string; targets: Array<{ expr: string }> }

// A histogram's series carry these suffixes; the registry knows the base name.
const histogramSuffix = /_(bucket|sum|count)$/;

test('every panel of bench/dashboards/sdc-overview.json queries a registered metric', async () => {
  const dashboard = JSON.parse(await readFile(new URL('./sdc-overview.json', import.meta.url), 'utf8')) as { panels: Panel[]; uid: string };
  assert.equal(dashboard.uid, 'sdc-overview');
  const registered = new Set((await new ServiceMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
  assert.ok(registered.size >= 10, `registry lists ${registered.size} metrics`);
  const used = new Set<string>();
  assert.ok(dashboard.panels.length > 0);
  for (const panel of dashboard.panels) {
    assert.ok(panel.targets.length > 0, `panel ${panel.title} has no query`);
    for (const { expr } of panel.targets) {
      const names = expr.match(/\bsdc_[a-z0-9_]+/g) ?? [];
      assert.ok(names.length > 0, `panel ${panel.title}: ${expr} names no sdc_ metric`);
      for (const name of names) {
        const base = registered.has(name) ? name : name.replace(histogramSuffix, '');
        assert.ok(registered.has(base), `panel ${panel.title}: ${name} is not registered`);
        used.add(base);
      }
    }
  }
  // Every registered sdc_ metric has a panel: a new metric shows up here until it gets one.
  const unused = [...registered].filter((name) => name.startsWith('sdc_') && !used.has(name));
  assert.deepEqual(unused, []);
});
