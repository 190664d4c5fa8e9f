#!/usr/bin/env node
// Per-connection heap growth by constructor between two V8 heap snapshots of one server
// (`SDC_BENCH_HEAP_SNAPSHOT_DIR=D sdc bench connections ...` writes them, with a .json beside each
// giving its connection count). Taking the difference of two loaded snapshots (N and 2N
// connections) cancels what is paid once (compiled code, caches, modules), which a single
// idle/loaded pair counts as per-connection cost.
//
//   node --max-old-space-size=6000 scripts/heap-snapshot-diff.mjs A.heapsnapshot B.heapsnapshot [--top 40] [--json]
//   node --max-old-space-size=6000 scripts/heap-snapshot-diff.mjs B.heapsnapshot --retainers 'native system / JSArrayBufferData'
//
// --retainers G lists, for the objects of group G in one snapshot, what holds them: the
// retaining object's group and the edge's name, --depth levels up (default 2), counted (which object of ours
// keeps a Buffer pool slab or a heap number alive).
//
// Sizes are V8's self (shallow) sizes summed per (node type, name): they add up to the whole
// heap, where retained sizes would count shared objects more than once. Strings are grouped by
// type alone, since their "name" is their text.
import { readFileSync } from 'node:fs';

/** The parsed snapshot with a function naming each node's group. */
function load(path) {
  const snapshot = JSON.parse(readFileSync(path, 'utf8'));
  const { node_fields: fields, node_types: types } = snapshot.snapshot.meta;
  const typeNames = types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const { strings } = snapshot;
  const groupOf = (i) => {
    const type = typeNames[snapshot.nodes[i + typeAt]];
    const textual = type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number';
    return textual ? type : `${type} ${String(strings[snapshot.nodes[i + nameAt]]).slice(0, 80)}`;
  };
  return { snapshot, width, groupOf };
}

/** Groups of a snapshot: `${type} ${name}` -> { count, bytes }. */
function summarize(path) {
  const { snapshot, width, groupOf } = load(path);
  const sizeAt = snapshot.snapshot.meta.node_fields.indexOf('self_size');
  const { nodes } = snapshot;
  const groups = new Map();
  let totalBytes = 0;
  for (let i = 0; i < nodes.length; i += width) {
    const bytes = nodes[i + sizeAt];
    const key = groupOf(i);
    const group = groups.get(key) ?? { count: 0, bytes: 0 };
    group.count += 1;
    group.bytes += bytes;
    groups.set(key, group);
    totalBytes += bytes;
  }
  return { groups, totalBytes };
}

/** The connection count the bench recorded beside the snapshot (D/<role>-<pid>-<n>.json). */
function connectionsOf(path) {
  return JSON.parse(readFileSync(path.replace(/\.heapsnapshot$/, '.json'), 'utf8')).connections;
}

/** For the nodes of `group`: counts of (retainer group, edge name) paths, two levels up. */
function retainers(path, group, top, depth) {
  const { snapshot, width, groupOf } = load(path);
  const { nodes, edges, strings } = snapshot;
  const meta = snapshot.snapshot.meta;
  const edgeWidth = meta.edge_fields.length;
  const edgeTypeAt = meta.edge_fields.indexOf('type');
  const edgeNameAt = meta.edge_fields.indexOf('name_or_index');
  const edgeToAt = meta.edge_fields.indexOf('to_node');
  const edgeTypes = meta.edge_types[0];
  const edgeCountAt = meta.node_fields.indexOf('edge_count');
  const parents = new Map();
  let edge = 0;
  for (let i = 0; i < nodes.length; i += width) {
    for (let e = 0; e < nodes[i + edgeCountAt]; e++, edge += edgeWidth) {
      const type = edgeTypes[edges[edge + edgeTypeAt]];
      if (type === 'weak') continue;
      const to = edges[edge + edgeToAt];
      const name = type === 'element' || type === 'hidden' ? `[${type}]` : String(strings[edges[edge + edgeNameAt]]);
      const list = parents.get(to) ?? [];
      if (list.length < 4) list.push([i, name]);
      parents.set(to, list);
    }
  }
  const paths = new Map();
  for (let i = 0; i < nodes.length; i += width) {
    if (groupOf(i) !== group) continue;
    for (const [parent, name] of parents.get(i) ?? []) {
      let key = `${groupOf(parent)} .${name}`;
      // Further up, the first retainer only: enough to name the owner.
      for (let level = 1, at = parent; level < depth; level++) {
        const up = (parents.get(at) ?? [])[0];
        if (up === undefined) break;
        key += ` <- ${groupOf(up[0])} .${up[1]}`;
        at = up[0];
      }
      paths.set(key, (paths.get(key) ?? 0) + 1);
    }
  }
  const rows = [...paths].sort((x, y) => y[1] - x[1]).slice(0, top);
  for (const [key, count] of rows) process.stdout.write(`${count}\t${key}\n`);
  return 0;
}

function main(argv) {
  const retainersAt = argv.indexOf('--retainers');
  if (retainersAt >= 0) {
    const topAt = argv.indexOf('--top');
    const depthAt = argv.indexOf('--depth');
    return retainers(argv.find((arg) => arg.endsWith('.heapsnapshot')), argv[retainersAt + 1], topAt >= 0 ? Number(argv[topAt + 1]) : 40, depthAt >= 0 ? Number(argv[depthAt + 1]) : 2);
  }
  const [pathA, pathB] = argv.filter((arg) => arg.endsWith('.heapsnapshot'));
  if (pathA === undefined || pathB === undefined) {
    process.stderr.write('usage: heap-snapshot-diff.mjs A.heapsnapshot B.heapsnapshot [--top N] [--json]\n');
    return 2;
  }
  const topAt = argv.indexOf('--top');
  const top = topAt >= 0 ? Number(argv[topAt + 1]) : 40;
  const connections = connectionsOf(pathB) - connectionsOf(pathA);
  if (!(connections > 0)) throw new Error(`B must hold more connections than A (got ${connections})`);
  const a = summarize(pathA);
  const b = summarize(pathB);
  const rows = [];
  for (const key of new Set([...a.groups.keys(), ...b.groups.keys()])) {
    const before = a.groups.get(key) ?? { count: 0, bytes: 0 };
    const after = b.groups.get(key) ?? { count: 0, bytes: 0 };
    rows.push({ group: key, countPerConnection: (after.count - before.count) / connections, bytesPerConnection: (after.bytes - before.bytes) / connections });
  }
  rows.sort((x, y) => Math.abs(y.bytesPerConnection) - Math.abs(x.bytesPerConnection));
  const totalPerConnection = (b.totalBytes - a.totalBytes) / connections;
  if (argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ connections, totalBytesPerConnection: totalPerConnection, rows: rows.slice(0, top) }, null, 1)}\n`);
    return 0;
  }
  process.stdout.write(`${connections} connections more; heap ${totalPerConnection.toFixed(0)} B per connection\n`);
  process.stdout.write('| B per connection | objects per connection | type and name |\n| ---: | ---: | --- |\n');
  for (const row of rows.slice(0, top)) {
    process.stdout.write(`| ${row.bytesPerConnection.toFixed(0)} | ${row.countPerConnection.toFixed(2)} | ${row.group.replace(/\|/g, '\\|')} |\n`);
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
