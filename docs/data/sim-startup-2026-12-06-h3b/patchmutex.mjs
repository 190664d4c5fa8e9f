// What depth.mjs needs in a dist copy: AsyncMutex.acquire counts, by how many callers held or waited for
// the database when it was called (0: free), into globalThis.__mutexDepth. (h3 made this edit with an
// inline python replace of the same line; this script does the same.)
import { readFileSync, writeFileSync } from 'node:fs';
const f = `${process.argv[2]}/dist/runtime/async-mutex.js`;
let s = readFileSync(f, 'utf8');
const line = '        const h = (globalThis.__mutexDepth ??= new Map()); const k = this.locked ? this.waiters.length + 1 : 0; h.set(k, (h.get(k) ?? 0) + 1);\n';
if (!s.includes('    acquire(reserved) {\n')) throw new Error('patch failed');
s = s.replace('    acquire(reserved) {\n', `    acquire(reserved) {\n${line}`);
writeFileSync(f, s);
console.log('patched', f);
