/**
 * What one idle session holds on postern's V8 heap: two heap snapshots (before the first session
 * and with N sessions open, written by the scale section with BENCH_HEAP_SNAPSHOT=<dir>), grouped
 * by what DevTools calls the constructor (node type + name), the difference divided by N. Retained
 * sizes come from the dominator tree of the second snapshot (Cooper, Harvey & Kennedy's iterative
 * algorithm; weak edges do not retain), averaged per instance.
 *
 *   node --max-old-space-size=4096 --import tsx bench/heap-diff.ts before.heapsnapshot after.heapsnapshot 1000 [top] ['(array) ']
 *
 * With a group as the last argument, it lists who holds that group's nodes (holder group . edge).
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface Group {
  count: number;
  self: number;
  retained: number;
}

/** With `who`: for the nodes of that group, who holds them (holder's group and edge name), by self size. */
function groups(file: string, withRetained: boolean, who?: string): Map<string, Group> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const { meta } = snap.snapshot;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const [typeAt, nameAt, selfAt, edgeCountAt] = ['type', 'name', 'self_size', 'edge_count'].map((f) => meta.node_fields.indexOf(f)) as [number, number, number, number];
  const [edgeTypeAt, toAt] = ['type', 'to_node'].map((f) => meta.edge_fields.indexOf(f)) as [number, number];
  const nodeTypes = meta.node_types[0];
  const weak = meta.edge_types[0].indexOf('weak');
  const { nodes, edges, strings } = snap;
  const n = nodes.length / nf;
  const firstEdge = new Uint32Array(n + 1);
  for (let i = 0, e = 0; i < n; i++) {
    firstEdge[i] = e;
    e += nodes[i * nf + edgeCountAt]! * ef;
    firstEdge[i + 1] = e;
  }
  const keyOf = (i: number) => {
    const type = nodeTypes[nodes[i * nf + typeAt]!]!;
    const name = type === 'object' || type === 'closure' || type === 'native' ? strings[nodes[i * nf + nameAt]!]! : '';
    return `(${type}) ${name.slice(0, 60)}`;
  };
  if (who) return holders(who, n, nf, ef, nodes, edges, strings, firstEdge, selfAt, toAt, edgeTypeAt, meta.edge_fields.indexOf('name_or_index'), meta.edge_types[0], keyOf);
  const retained = withRetained ? retainedSizes(n, nf, ef, nodes, edges, firstEdge, selfAt, toAt, edgeTypeAt, weak) : null;
  const out = new Map<string, Group>();
  for (let i = 0; i < n; i++) {
    const key = keyOf(i);
    const g = out.get(key) ?? { count: 0, self: 0, retained: 0 };
    g.count++;
    g.self += nodes[i * nf + selfAt]!;
    if (retained) g.retained += retained[i]!;
    out.set(key, g);
  }
  return out;
}

function holders(who: string, n: number, nf: number, ef: number, nodes: number[], edges: number[], strings: string[], firstEdge: Uint32Array, selfAt: number, toAt: number, edgeTypeAt: number, edgeNameAt: number, edgeTypes: string[], keyOf: (i: number) => string): Map<string, Group> {
  const out = new Map<string, Group>();
  for (let v = 0; v < n; v++) {
    for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e += ef) {
      const w = edges[e + toAt]! / nf;
      if (keyOf(w) !== who) continue;
      const type = edgeTypes[edges[e + edgeTypeAt]!]!;
      if (type === 'weak') continue;
      const name = type === 'element' || type === 'hidden' ? '[]' : strings[edges[e + edgeNameAt]!]!;
      const key = `${keyOf(v)} .${name}`;
      const g = out.get(key) ?? { count: 0, self: 0, retained: 0 };
      g.count++;
      g.self += nodes[w * nf + selfAt]!;
      out.set(key, g);
    }
  }
  return out;
}

function retainedSizes(n: number, nf: number, ef: number, nodes: number[], edges: number[], firstEdge: Uint32Array, selfAt: number, toAt: number, edgeTypeAt: number, weak: number): Float64Array {
  const strong = (e: number) => edges[e + edgeTypeAt] !== weak;
  // Postorder by an iterative DFS from the root (node 0).
  const post = new Int32Array(n).fill(-1);
  const order: number[] = [];
  const seen = new Uint8Array(n);
  const stack: number[] = [0];
  const cursor = new Uint32Array(n);
  seen[0] = 1;
  for (let i = 0; i < n; i++) cursor[i] = firstEdge[i]!;
  while (stack.length) {
    const v = stack.at(-1)!;
    let pushed = false;
    while (cursor[v]! < firstEdge[v + 1]!) {
      const e = cursor[v]!;
      cursor[v] = e + ef;
      if (!strong(e)) continue;
      const w = edges[e + toAt]! / nf;
      if (!seen[w]) {
        seen[w] = 1;
        stack.push(w);
        pushed = true;
        break;
      }
    }
    if (!pushed) {
      stack.pop();
      post[v] = order.length;
      order.push(v);
    }
  }
  // Predecessors of reachable nodes (CSR).
  const predCount = new Uint32Array(n + 1);
  for (let v = 0; v < n; v++) {
    if (post[v]! < 0) continue;
    for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e += ef) if (strong(e)) predCount[edges[e + toAt]! / nf + 1]!++;
  }
  for (let i = 0; i < n; i++) predCount[i + 1]! += predCount[i]!;
  const preds = new Uint32Array(predCount[n]!);
  const fill = predCount.slice(0, n);
  for (let v = 0; v < n; v++) {
    if (post[v]! < 0) continue;
    for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e += ef) if (strong(e)) preds[fill[edges[e + toAt]! / nf]!++] = v;
  }
  const idom = new Int32Array(n).fill(-1);
  idom[0] = 0;
  const intersect = (a: number, b: number) => {
    while (a !== b) {
      while (post[a]! < post[b]!) a = idom[a]!;
      while (post[b]! < post[a]!) b = idom[b]!;
    }
    return a;
  };
  for (let changed = true; changed;) {
    changed = false;
    for (let k = order.length - 2; k >= 0; k--) {
      const v = order[k]!;
      let d = -1;
      for (let p = predCount[v]!; p < predCount[v + 1]!; p++) {
        const u = preds[p]!;
        if (idom[u]! < 0) continue;
        d = d < 0 ? u : intersect(u, d);
      }
      if (d >= 0 && idom[v] !== d) {
        idom[v] = d;
        changed = true;
      }
    }
  }
  const retained = new Float64Array(n);
  for (let v = 0; v < n; v++) if (post[v]! >= 0) retained[v] = nodes[v * nf + selfAt]!;
  // A dominator is a DFS ancestor, so it comes later in postorder: children are summed first.
  for (const v of order) if (v !== 0 && idom[v]! >= 0) retained[idom[v]!]! += retained[v]!;
  return retained;
}

function main(): void {
  const [before, after, sessionsArg, topArg, who] = process.argv.slice(2);
  if (!before || !after || !sessionsArg) throw new Error('usage: heap-diff.ts before.heapsnapshot after.heapsnapshot <sessions> [top]');
  const sessions = Number(sessionsArg);
  const a = groups(before, false, who);
  const b = groups(after, !who, who);
  const rows = [...b].map(([key, g]) => {
    const old = a.get(key) ?? { count: 0, self: 0, retained: 0 };
    return { key, count: (g.count - old.count) / sessions, self: (g.self - old.self) / sessions, retainedEach: g.retained / g.count };
  }).sort((x, y) => y.self - x.self);
  const total = rows.reduce((s, r) => s + r.self, 0);
  const top = rows.slice(0, Number(topArg ?? 30));
  process.stdout.write(`heap per session (${sessions} sessions): ${(total / 1024).toFixed(1)} KiB self size in all\n\n`);
  process.stdout.write('| constructor | per session | self bytes per session | retained bytes per instance |\n|---|---|---|---|\n');
  for (const r of top) process.stdout.write(`| ${r.key.replaceAll('|', '\\|')} | ${r.count.toFixed(2)} | ${r.self.toFixed(0)} | ${r.retainedEach.toFixed(0)} |\n`);
}

main();
