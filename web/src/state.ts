// What the whole app shares: pampad's VMs, tasks and resources, refreshed
// from the REST API and kept live by the event stream.
import { api } from './api/session';
import { EventStream, type StreamStatus } from './api/events';
import { listHosts } from './api/pool';
import type { HostInfo, Network, PampaEvent, Pool, PoolHost, Repo, Task, Vm } from './api/types';
import { isPool } from './lib/pool';
import { Store } from './lib/store';

export interface AppState {
  host: HostInfo | null;
  vms: Vm[];
  vmsLoaded: boolean;
  tasks: Task[];
  pools: Pool[];
  networks: Network[];
  repos: Repo[];
  hosts: PoolHost[];
  events: StreamStatus;
  eventsWhy: string;
  /** Bumped on snapshot and backup events, so open tabs reload. */
  snapshotsRev: Record<string, number>;
  backupsRev: Record<string, number>;
}

export const store = new Store<AppState>({
  host: null,
  vms: [],
  vmsLoaded: false,
  tasks: [],
  pools: [],
  networks: [],
  repos: [],
  hosts: [],
  events: 'connecting',
  eventsWhy: '',
  snapshotsRev: {},
  backupsRev: {},
});

const byName = <T extends { name: string }>(a: T, b: T) => a.name.localeCompare(b.name);

function quiet(p: Promise<unknown>): void {
  p.catch(() => {
    /* shown where it matters; a 401 already signed out */
  });
}

export async function refreshVms(): Promise<void> {
  const vms = await api.get<Vm[]>('/api/v1/vms');
  store.set({ vms: [...vms].sort(byName), vmsLoaded: true });
}

export async function refreshVm(name: string): Promise<Vm | null> {
  try {
    const vm = await api.get<Vm>(`/api/v1/vms/${encodeURIComponent(name)}`);
    upsertVm(vm);
    return vm;
  } catch (e) {
    if ((e as { status?: number }).status === 404) removeVm(name);
    throw e;
  }
}

export function upsertVm(vm: Vm): void {
  store.set((s) => {
    const rest = s.vms.filter((v) => v.name !== vm.name);
    return { vms: [...rest, vm].sort(byName) };
  });
}

export function removeVm(name: string): void {
  // A refresh still due would only find it gone (a 404).
  clearTimeout(vmRefresh.get(name));
  vmRefresh.delete(name);
  store.set((s) => ({ vms: s.vms.filter((v) => v.name !== name) }));
}

export async function refreshTasks(): Promise<void> {
  const tasks = await api.get<Task[]>('/api/v1/tasks');
  // The list has no logs: keep the ones already fetched.
  store.set((s) => {
    const old = new Map(s.tasks.map((t) => [t.id, t]));
    return { tasks: tasks.map((t) => ({ ...old.get(t.id), ...t, log: t.log ?? old.get(t.id)?.log })) };
  });
}

export function upsertTask(t: Task): void {
  store.set((s) => {
    const i = s.tasks.findIndex((x) => x.id === t.id);
    if (i < 0) return { tasks: [...s.tasks, t] };
    const old = s.tasks[i];
    // A GET answered before a newer event may arrive after it: never let a
    // stale answer take a task back (finished -> running, 40 % -> 30 %).
    if (old.state !== 'running' && t.state === 'running') return {};
    let merged = { ...old, ...t };
    if (old.state === 'running' && t.state === 'running' && (t.progress ?? 0) < (old.progress ?? 0)) {
      merged = { ...merged, progress: old.progress, message: old.message };
    }
    const tasks = s.tasks.slice();
    tasks[i] = merged;
    return { tasks };
  });
}

export async function refreshPools(): Promise<void> {
  store.set({ pools: [...(await api.get<Pool[]>('/api/v1/pools'))].sort(byName) });
}
export async function refreshNetworks(): Promise<void> {
  store.set({ networks: [...(await api.get<Network[]>('/api/v1/networks'))].sort(byName) });
}
export async function refreshRepos(): Promise<void> {
  store.set({ repos: [...(await api.get<Repo[]>('/api/v1/repos'))].sort(byName) });
}
export async function refreshHosts(): Promise<void> {
  store.set({ hosts: await listHosts(api) });
}

/** One host as GET /api/v1/hosts/NAME answered. */
export function upsertHost(h: PoolHost): void {
  store.set((s) => ({ hosts: [...s.hosts.filter((x) => x.name !== h.name), h].sort(byName) }));
}

export function refreshAll(): void {
  quiet(api.get<HostInfo>('/api/v1/host').then((host) => store.set({ host })));
  quiet(refreshVms());
  quiet(refreshTasks());
  quiet(refreshPools());
  quiet(refreshNetworks());
  quiet(refreshRepos());
  quiet(refreshHosts());
}

// A burst of events for one VM (state, then busy) costs one GET.
const vmRefresh = new Map<string, ReturnType<typeof setTimeout>>();
function scheduleVmRefresh(name: string): void {
  if (vmRefresh.has(name)) return;
  vmRefresh.set(
    name,
    setTimeout(() => {
      vmRefresh.delete(name);
      quiet(refreshVm(name));
    }, 150),
  );
}

function bump(key: 'snapshotsRev' | 'backupsRev', vm: string): void {
  store.set((s) => ({ [key]: { ...s[key], [vm]: (s[key][vm] ?? 0) + 1 } }));
}

/** What a finished task may have changed, by its kind. */
function afterTask(t: Task): void {
  const kind = t.type ?? t.kind ?? '';
  const target = t.target ?? '';
  const moved = kind === 'vm-migrate' || kind === 'host-evacuate';
  if (kind.startsWith('vm') || moved || kind === 'shutdown' || kind === 'restore' || kind.includes('restore')) quiet(refreshVms());
  else if (target && store.get().vms.some((v) => v.name === target)) scheduleVmRefresh(target);
  if (kind === 'import' || kind.startsWith('vm') || kind.includes('restore')) quiet(refreshPools());
  if (kind.includes('snapshot') && target) bump('snapshotsRev', target);
  if ((kind.includes('backup') || kind === 'prune') && target) bump('backupsRev', target);
  // What runs where, and what each host has committed.
  if (moved || kind.startsWith('vm') || kind === 'shutdown') quiet(refreshHosts());
}

export function handleEvent(e: PampaEvent): void {
  switch (e.type) {
    case 'vm': {
      const ev = e as { vm: string; state: string };
      if (ev.state === 'deleted') {
        removeVm(ev.vm);
        return;
      }
      // Show the new state at once; the full VM (actions, busy) follows.
      store.set((s) => ({ vms: s.vms.map((v) => (v.name === ev.vm ? { ...v, state: ev.state } : v)) }));
      scheduleVmRefresh(ev.vm);
      return;
    }
    case 'task': {
      const t = (e as { task: Task }).task;
      if (!t?.id) return;
      const before = store.get().tasks.find((x) => x.id === t.id);
      // Events carry the log too; keep it.
      upsertTask(t);
      if (t.state !== 'running' && before?.state !== t.state) afterTask(t);
      // "busy" shows at once; a task on something else (an import's "pool/volume") is no VM's.
      else if (!before && t.target && store.get().vms.some((v) => v.name === t.target)) scheduleVmRefresh(t.target);
      return;
    }
    case 'snapshot':
      bump('snapshotsRev', (e as { vm: string }).vm);
      scheduleVmRefresh((e as { vm: string }).vm);
      return;
    case 'backup':
      bump('backupsRev', (e as { vm: string }).vm);
      return;
    default:
      return;
  }
}

let stream: EventStream | null = null;
let poll: ReturnType<typeof setInterval> | null = null;
let hostsPoll: ReturnType<typeof setInterval> | null = null;

// Hosts send no events: in a pool their state (a host lost, in maintenance)
// is asked for now and then. Alone there is nothing to follow.
const HOSTS_EVERY_MS = 10_000;

/** Starts the live view; while the event socket is down, polls instead. */
export function startLive(): void {
  stopLive();
  refreshAll();
  stream = new EventStream(api, handleEvent, (status, why) => {
    const was = store.get().events;
    store.set({ events: status, eventsWhy: why ?? '' });
    if (status === 'live') {
      if (poll) clearInterval(poll);
      poll = null;
      // Anything missed while down.
      if (was !== 'live') {
        quiet(refreshVms());
        quiet(refreshTasks());
      }
    } else if (status === 'down' && !poll) {
      poll = setInterval(() => {
        quiet(refreshVms());
        quiet(refreshTasks());
      }, 3000);
    }
  });
  stream.start();
  hostsPoll = setInterval(() => {
    if (isPool(store.get().hosts)) quiet(refreshHosts());
  }, HOSTS_EVERY_MS);
}

export function stopLive(): void {
  stream?.stop();
  stream = null;
  if (poll) clearInterval(poll);
  poll = null;
  if (hostsPoll) clearInterval(hostsPoll);
  hostsPoll = null;
}
