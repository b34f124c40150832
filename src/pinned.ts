/**
 * What a pinned BPF object is, from the kernel's own description of its file
 * descriptor: the anon inode's name in /proc/self/fd (bpf-map, bpf-prog,
 * bpf_link) and, for a map, its type and key size in /proc/self/fdinfo. Read
 * before node-bpf takes the descriptor as a map: asked for map info, a program
 * answers with its own info read as a map's (a "HASH with 833221721-byte keys"),
 * and node-bpf names no map type newer than RINGBUF.
 */
import { readFileSync, readlinkSync } from 'node:fs';

/** The kernel's enum bpf_map_type, by value (include/uapi/linux/bpf.h). */
const MAP_TYPES = [
  'UNSPEC', 'HASH', 'ARRAY', 'PROG_ARRAY', 'PERF_EVENT_ARRAY', 'PERCPU_HASH', 'PERCPU_ARRAY', 'STACK_TRACE',
  'CGROUP_ARRAY', 'LRU_HASH', 'LRU_PERCPU_HASH', 'LPM_TRIE', 'ARRAY_OF_MAPS', 'HASH_OF_MAPS', 'DEVMAP', 'SOCKMAP',
  'CPUMAP', 'XSKMAP', 'SOCKHASH', 'CGROUP_STORAGE', 'REUSEPORT_SOCKARRAY', 'PERCPU_CGROUP_STORAGE', 'QUEUE', 'STACK',
  'SK_STORAGE', 'DEVMAP_HASH', 'STRUCT_OPS', 'RINGBUF', 'INODE_STORAGE', 'TASK_STORAGE', 'BLOOM_FILTER',
  'USER_RINGBUF', 'CGRP_STORAGE', 'ARENA',
] as const;

export const MAP_TYPE_HASH = 1;

/** `HASH`, `BLOOM_FILTER`...; `type 99` for a type newer than this list. */
export function mapTypeName(type: number): string {
  return MAP_TYPES[type] ?? `type ${type}`;
}

export type PinnedObject =
  | { readonly kind: 'map'; readonly mapType: number; readonly keySize: number }
  | { readonly kind: 'program' | 'link' | 'other'; readonly name: string };

/** What the BPF object behind `fd` is. */
export function describeBpfFd(fd: number): PinnedObject {
  let name: string;
  try {
    name = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    name = 'unknown';
  }
  if (name === 'anon_inode:bpf-map') {
    const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    const field = (key: string): number => Number(new RegExp(`^${key}:\\s*(\\d+)$`, 'm').exec(info)?.[1] ?? NaN);
    return { kind: 'map', mapType: field('map_type'), keySize: field('key_size') };
  }
  if (name === 'anon_inode:bpf-prog') return { kind: 'program', name };
  if (name === 'anon_inode:bpf_link') return { kind: 'link', name };
  return { kind: 'other', name };
}

/** Why the object behind `fd` is not what --cgroupmap/--mntnsmap take (a hash map with 8-byte keys), or undefined. */
export function filterMapProblem(fd: number): string | undefined {
  const o = describeBpfFd(fd);
  if (o.kind !== 'map') {
    const what = o.kind === 'program' ? 'a BPF program' : o.kind === 'link' ? 'a BPF link' : o.name;
    return `expected a BPF hash map with 8-byte keys, found ${what}`;
  }
  if (o.mapType !== MAP_TYPE_HASH || o.keySize !== 8) {
    return `expected a BPF hash map with 8-byte keys, found type ${mapTypeName(o.mapType)} with ${o.keySize}-byte keys`;
  }
  return undefined;
}
