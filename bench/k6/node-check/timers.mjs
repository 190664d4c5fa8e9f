export { setInterval, clearInterval, setTimeout, clearTimeout } from 'node:timers';
