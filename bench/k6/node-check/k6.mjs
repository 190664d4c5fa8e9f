// The k6 module in Node: check records its results, fail throws, sleep blocks (k6's sleep is synchronous).
export function check(value, checks) {
  let all = true;
  for (const [name, fn] of Object.entries(checks)) {
    const ok = Boolean(fn(value));
    globalThis.__k6shim.checks.push({ name, ok });
    all &&= ok;
  }
  return all;
}
export function fail(message) {
  throw new Error(message);
}
export function sleep(seconds) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, seconds * 1000);
}
