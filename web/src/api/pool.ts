// The pool of hosts over REST: the host list, one host, maintenance, and
// moving a VM. In a pool any host answers; pampad forwards maintenance to
// the host named and a migration to the VM's host (routes_cluster.cc).
import { type ApiClient, vmPath } from './client';
import type { MaintenanceReply, MigrateReply, MigrateRequest, PoolHost } from './types';

/** The path of a host resource, its name escaped. */
export function hostPath(name: string, rest = ''): string {
  return `/api/v1/hosts/${encodeURIComponent(name)}${rest}`;
}

/** Every host of the pool by name (alone: this host only). */
export async function listHosts(api: ApiClient): Promise<PoolHost[]> {
  const hosts = await api.get<PoolHost[]>('/api/v1/hosts');
  return [...(hosts ?? [])].sort((a, b) => a.name.localeCompare(b.name));
}

export function getHost(api: ApiClient, name: string): Promise<PoolHost> {
  return api.get<PoolHost>(hostPath(name));
}

/**
 * Maintenance on (the host takes no new VMs and its running VMs move away:
 * the answer's task) or off. Alone, pampad refuses (400): there is nowhere
 * to move VMs to.
 */
export function setMaintenance(api: ApiClient, name: string, on: boolean): Promise<MaintenanceReply> {
  return api.post<MaintenanceReply>(hostPath(name, '/maintenance'), { on });
}

/** Starts moving a VM to another host; follow the answer's task. */
export function migrateVm(api: ApiClient, vm: string, req: MigrateRequest): Promise<MigrateReply> {
  return api.post<MigrateReply>(vmPath(vm, '/migrate'), req);
}

/**
 * Forgets a host that left the pool for good. pampad refuses (409) while the
 * host is online or the store still gives it VMs.
 */
export function removeHost(api: ApiClient, name: string): Promise<unknown> {
  return api.del(hostPath(name));
}
