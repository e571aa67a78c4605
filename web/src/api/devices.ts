// A VM's disks, NICs and CD over REST: one PATCH of the VM with the device
// fields (DeviceChange), hot-plugged by pampad while the VM runs. A refusal
// comes back as an ApiError whose message is pampad's own, to show as it is.
import { type ApiClient, vmPath } from './client';
import type { DeviceChange, Vm } from './types';

/** Applies the change and returns the VM as pampad now has it. */
export function changeDevices(api: ApiClient, vm: string, change: DeviceChange): Promise<Vm> {
  return api.patch<Vm>(vmPath(vm), change);
}
