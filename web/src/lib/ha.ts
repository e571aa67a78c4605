// What the HA page makes of GET /api/v1/ha: the HA VMs in the order the
// pool starts them again, what their state needs said beside it, and the
// events newest first. Pure functions, unit tested in ha.test.ts.
import type { HaEvent, HaStatus, HaVm } from '../api/types';

export interface HaRow {
  name: string;
  /** Its host; "a → b" when a recovery gave it to another one. */
  where: string;
  priority: number;
  state: string;
  /** pampad's reason, and how many starts were tried while it is on its way back. */
  why: string;
}

// A try count only means something while HA is still starting the VM, or gave up.
const TRYING = new Set(['recovering', 'restarting', 'failed']);

function rowOf(v: HaVm, maxTries: number): HaRow {
  const where = v.to && v.to !== v.host ? `${v.host} → ${v.to}` : v.host;
  const tries = v.tries && TRYING.has(v.state) ? `try ${v.tries} of ${maxTries}` : '';
  return { name: v.name, where, priority: v.priority ?? 0, state: v.state, why: [v.reason, tries].filter(Boolean).join('; ') };
}

/**
 * The table's rows in the order a lost host's VMs start elsewhere: highest
 * priority first, then by name. The order does not follow the state, so rows
 * stay put while the page polls.
 */
export function haRows(ha: Pick<HaStatus, 'vms' | 'settings'>): HaRow[] {
  return (ha.vms ?? [])
    .map((v) => rowOf(v, ha.settings?.max_tries ?? 0))
    .sort((a, b) => b.priority - a.priority || a.name.localeCompare(b.name));
}

/** The events newest first (pampad lists them oldest first). */
export function haEvents(ha: Pick<HaStatus, 'events'>): HaEvent[] {
  return [...(ha.events ?? [])].reverse();
}
