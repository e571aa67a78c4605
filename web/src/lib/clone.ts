// The clone and rename forms as requests, checked the way pampad checks
// them (src/vm/vm_spec.cc ParseCloneRequest, src/vm/clone.cc), so the form
// says what is wrong before asking. Pure functions, unit tested in
// clone.test.ts.
import type { CloneRequest, Vm } from '../api/types';

/** A VM name as pampad takes it (ValidateName), for an input's pattern. */
export const VM_NAME_PATTERN = '[a-z0-9][a-z0-9\\-]{0,62}';

/** What is wrong with a new VM name ('' when nothing), in pampad's terms. */
export function vmNameProblem(name: string): string {
  if (!name) return 'give the new VM a name';
  if (name.length > 63) return 'a VM name has at most 63 characters';
  if (!new RegExp(`^${VM_NAME_PATTERN}$`).test(name)) return `'${name}' is no VM name: use a-z, 0-9 and '-', starting with a letter or digit`;
  return '';
}

/** Whether QEMU holds the VM's disks: then only a snapshot of them can be copied. */
export function runsNow(vm: Pick<Vm, 'state'>): boolean {
  return vm.state === 'running' || vm.state === 'paused';
}

export interface CloneForm {
  name: string;
  /** Only a template's clones can be linked. */
  linked: boolean;
  /** '' for the disks as they are now. */
  snapshot: string;
  /** '' for the source's pools. */
  pool: string;
}

/** The clone form as the request body, or what is wrong with it. */
export function cloneRequest(f: CloneForm, vm: Pick<Vm, 'name' | 'state' | 'template'>): { body: CloneRequest } | { error: string } {
  const name = f.name.trim();
  const problem = vmNameProblem(name);
  if (problem) return { error: problem };
  if (name === vm.name) return { error: `a clone needs a name of its own, not '${vm.name}'` };
  const body: CloneRequest = { name };
  if (f.linked && vm.template) {
    // Overlays on the template's disks as they are, beside them: no snapshot, no pool.
    body.linked = true;
    return { body };
  }
  if (f.snapshot) body.snapshot = f.snapshot;
  else if (runsNow(vm)) return { error: `${vm.name} is ${vm.state}: pick one of its snapshots to copy, or stop it first` };
  if (f.pool) body.pool = f.pool;
  return { body };
}

/** The new name for a rename, or what is wrong with it. */
export function renameRequest(to: string, vm: Pick<Vm, 'name'>): { body: { name: string } } | { error: string } {
  const name = to.trim();
  const problem = vmNameProblem(name);
  if (problem) return { error: problem };
  if (name === vm.name) return { error: `${vm.name} already has that name` };
  return { body: { name } };
}

/** How a finished vm-clone task went, in a sentence (its result: {vm, source, linked}). */
export function cloneSummary(result: unknown, target = ''): string {
  const r = (result && typeof result === 'object' ? result : {}) as { vm?: string; source?: string; linked?: boolean };
  const vm = r.vm || target;
  const head = `${r.linked ? 'Linked clone' : 'Clone'}${vm ? ` ${vm}` : ''} made${r.source ? ` from ${r.source}` : ''}`;
  return r.linked ? `${head}: its disks read from the template's.` : `${head}, with its own copy of the disks.`;
}
