// Metrics and capacity over REST: a VM's and this host's history, what the
// running VMs committed against what the host has, and KSM on or off. pampad
// answers for the host it runs on (src/api/routes_resources.cc); in a pool,
// another host's figures come from that host's own pampad.
import { type ApiClient, vmPath } from './client';
import type { Capacity, HostStats, Ksm, VmStats } from './types';

/** A VM's history over the last `since` seconds. */
export function getVmStats(api: ApiClient, vm: string, since: number): Promise<VmStats> {
  return api.get<VmStats>(vmPath(vm, `/stats?since=${since}`));
}

/** This host's history over the last `since` seconds. */
export function getHostStats(api: ApiClient, since: number): Promise<HostStats> {
  return api.get<HostStats>(`/api/v1/host/stats?since=${since}`);
}

/** The size of VM that `fits` counts; absent: pampad's default (1 vCPU, 256 MiB). */
export interface VmSize {
  cpus: number;
  memory_mib: number;
}

/**
 * Committed CPU and memory, balloon and KSM savings, and how many more VMs
 * of `size` fit. The memory goes as a size ("512M"), as pampad's route and
 * docs/api/openapi.yaml take it.
 */
export function getCapacity(api: ApiClient, size?: VmSize): Promise<Capacity> {
  const query = size ? `?cpus=${size.cpus}&memory=${size.memory_mib}M` : '';
  return api.get<Capacity>(`/api/v1/host/capacity${query}`);
}

/** Kernel samepage merging: on or off, and what it saves. */
export function getKsm(api: ApiClient): Promise<Ksm> {
  return api.get<Ksm>('/api/v1/host/ksm');
}

/** Turns KSM on or off; pampad answers 503 when the kernel has none. */
export function setKsm(api: ApiClient, on: boolean): Promise<Ksm> {
  return api.request<Ksm>('PUT', '/api/v1/host/ksm', { on });
}
