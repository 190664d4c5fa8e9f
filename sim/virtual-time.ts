// Virtual time lives in runtime so that core tests and the simulator share one implementation.
export { VirtualTime } from '../core/time/virtual-time.js';
