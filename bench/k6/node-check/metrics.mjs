// k6/metrics in Node: every sample lands in globalThis.__k6shim.metrics[name] for the test to read.
class Metric {
  constructor(name) { this.name = name; globalThis.__k6shim.metrics[name] ??= []; }
  add(value, tags) { globalThis.__k6shim.metrics[this.name].push({ value: Number(value), tags: tags ?? {} }); }
}
export class Trend extends Metric {}
export class Rate extends Metric {}
export class Counter extends Metric {}
export class Gauge extends Metric {}
