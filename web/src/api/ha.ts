// High availability over REST: what the pool does to keep its HA VMs
// running. Any host answers from the shared store. A VM is made HA with
// PATCH /api/v1/vms/{name} {"ha": true, "ha_priority": N} (lib/vmconfig.ts).
import type { ApiClient } from './client';
import type { HaStatus } from './types';

/** The HA manager, the settings, each HA VM's state and the last events (oldest first). */
export function getHa(api: ApiClient): Promise<HaStatus> {
  return api.get<HaStatus>('/api/v1/ha');
}
