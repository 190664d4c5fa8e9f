// h1's measurement hook (not part of the product): records the WebAssembly memories that grow.
const mems = new Set();
globalThis.__h1mems = mems;
const grows = [];
const orig = WebAssembly.Memory.prototype.grow;
WebAssembly.Memory.prototype.grow = function grow(delta) {
  mems.add(this);
  const before = this.buffer.byteLength;
  const r = orig.call(this, delta);
  grows.push([before, this.buffer.byteLength, process.memoryUsage.rss()]);
  return r;
};
process.on('exit', () => {
  process.stderr.write(`H1EXIT ${JSON.stringify({ wasm: [...mems].map((m) => m.buffer.byteLength), growCount: grows.length, grows: grows.map((g) => g.map((x) => Math.round(x / 1048576))), mem: process.memoryUsage(), maxRssKiB: process.resourceUsage().maxRSS })}\n`);
});
