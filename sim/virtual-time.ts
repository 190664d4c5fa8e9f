// Virtual time lives in core/runtime so that core tests and the simulator share one implementation.
export { VirtualTime } from '../core/runtime/virtual-time.js';
