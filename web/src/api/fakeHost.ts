// A host as GET /api/v1/hosts answers it, for unit tests: online, 8 CPUs,
// 16 GiB, nothing committed; extra overrides any field.
import type { PoolHost } from './types';

export const GiB = 2 ** 30;

export const fakeHost = (name: string, extra: Partial<PoolHost> = {}): PoolHost => ({
  name,
  state: 'online',
  url: `http://${name}:8123`,
  version: '0.9',
  cpus: 8,
  memory_bytes: 16 * GiB,
  cpus_committed: 0,
  memory_committed: 0,
  vms: 0,
  running: 0,
  heartbeat_ms: 0,
  heartbeat_age_ms: 1000,
  maintenance: false,
  ...extra,
});
