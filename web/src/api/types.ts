// The JSON shapes pampad answers with (docs/api/openapi.yaml and
// src/api/routes_*.cc). Optional fields are ones older daemons may lack.

export type VmState = 'stopped' | 'starting' | 'running' | 'paused' | 'shutting-down' | 'crashed' | string;

/** How a disk is attached: virtio-blk (the default), virtio-scsi, or an AHCI (sata) port. */
export type DiskBus = 'virtio' | 'scsi' | 'sata';

export interface Vm {
  name: string;
  uuid?: string;
  state: VmState;
  reason?: string;
  busy?: string;
  actions?: string[];
  cpus: number;
  memory_mib: number;
  host?: string;
  /** A template never runs or changes; it is the source of clones. */
  template?: boolean;
  /**
   * base: "pool/volume" of the template's disk a linked clone's disk reads
   * from; bus: how the guest sees it, absent for virtio.
   */
  disks: { pool: string; volume: string; bus?: DiskBus; base?: string; iops?: number; bps?: number }[];
  /** bps: bandwidth each way, bytes/s; 0 or absent: no limit. */
  nics: { network: string; mac: string; bps?: number }[];
  cdrom?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  firmware?: string;
  autostart?: boolean;
  /** In a pool: started on another host when its host is lost, and again when it crashes. */
  ha?: boolean;
  /** 0..1000, present when ha is on: HA VMs with a higher one are started first. */
  ha_priority?: number;
  pid?: number;
  accel?: string;
  started?: number; // unix ms, 0 when not running
  /** Relative CPU share, 1..10000 (100 when absent). */
  cpu_weight?: number;
  /** The most CPU it may use, percent of one core (at most 100 per vCPU); 0: no cap. */
  cpu_cap?: number;
  /** Host cores its vCPUs run on ("0-1,3"); "": any. */
  cpu_pin?: string;
  /** Dynamic memory when 0 < memory_min_mib < memory_mib: the balloon may take the guest down to it; 0: static. */
  memory_min_mib?: number;
  /**
   * Running with dynamic memory: what the balloon leaves the guest now. This
   * pampad does not send it (yet): the stats' memory_assigned_bytes say it.
   */
  balloon_mib?: number;
}

/**
 * The resource fields of PATCH /api/v1/vms/{name}: all change at once while
 * the VM runs (cgroups, QEMU's throttling, tc on its taps, the balloon).
 */
export interface ResourceChange {
  cpu_weight?: number;
  cpu_cap?: number;
  cpu_pin?: string;
  memory_min_mib?: number;
  /** One entry per disk whose limits change; 0 removes a limit. */
  disk_limits?: { disk: number; iops: number; bps: number }[];
  nic_limits?: { nic: number; bps: number }[];
}

/**
 * A history (GET /api/v1/vms/{name}/stats, /api/v1/host/stats): `time` in
 * unix seconds, `step` seconds apart (5 for up to an hour, 60 for up to a
 * day, 1800 beyond), and one array per series as long as `time`, null where
 * nothing is known (the VM did not run, the guest gave no figure).
 */
export interface Stats<K extends string = string> {
  step: number;
  series: { time: number[] } & Partial<Record<K, (number | null)[]>>;
}

export type VmSeries =
  | 'cpu_percent' // of one core
  | 'memory_assigned_bytes' // what the balloon leaves the guest
  | 'memory_used_bytes' // in the guest, by its balloon driver
  | 'balloon_bytes' // taken by the balloon
  | 'disk_read_bps'
  | 'disk_write_bps'
  | 'disk_read_iops'
  | 'disk_write_iops'
  | 'net_rx_bps'
  | 'net_tx_bps';

export type HostSeries =
  | 'cpu_percent' /* of all CPUs */
  | 'memory_total_bytes'
  | 'memory_used_bytes'
  | 'load1'
  | 'ksm_saved_bytes'
  | 'pool_total_bytes' /* the storage pools' file systems, each counted once */
  | 'pool_used_bytes';

export interface VmStats extends Stats<VmSeries> {
  vm: string;
}

export interface HostStats extends Stats<HostSeries> {
  host: string;
}

/** Kernel samepage merging (GET and PUT /api/v1/host/ksm). */
export interface Ksm {
  /** False when the kernel has no KSM (older daemons do not say). */
  available?: boolean;
  run: boolean;
  pages_shared: number;
  pages_sharing: number;
  saved_bytes: number;
}

/** GET /api/v1/host/capacity: physical against what the running VMs committed. */
export interface Capacity {
  host?: string;
  cpus: number;
  vms_running?: number;
  vcpus: number;
  cpu_overcommit: number;
  memory_bytes: number;
  memory_committed_bytes: number;
  /** What the running VMs would hold with dynamic memory at its minimum. */
  memory_min_committed_bytes: number;
  memory_overcommit: number;
  balloon_saved_bytes: number;
  ksm: Ksm;
  /** Available memory the balloon controller keeps for the host. */
  reserve_bytes: number;
  free_bytes: number;
  /** How many more VMs of this size fit. */
  fits: { cpus: number; memory_bytes: number; count: number };
}

export type TaskState = 'running' | 'succeeded' | 'failed' | 'cancelled' | string;

export interface Task {
  id: string;
  type?: string; // pampad calls the kind "type"
  kind?: string;
  target?: string;
  state: TaskState;
  progress?: number; // 0..1
  message?: string;
  error?: string;
  log?: string[];
  started?: number;
  finished?: number;
  result?: unknown;
  host?: string;
}

export interface TaskRef {
  task: string;
  vm?: string;
  warnings?: string[];
}

export interface Pool {
  name: string;
  type: string;
  path: string;
  capacity: number;
  available: number;
}

export interface Volume {
  pool: string;
  name: string;
  format: string;
  path: string;
  size: number;
  allocated: number;
  vm?: string;
}

export interface Network {
  name: string;
  mode: string;
  bridge?: string;
  subnet?: string;
  gateway?: string;
  dhcp_start?: string;
  dhcp_end?: string;
  active?: boolean;
}

export interface Repo {
  name: string;
  url: string;
  encrypted?: boolean;
  key?: string;
}

export interface Backup {
  id: string;
  repo: string;
  vm?: string;
  created?: number;
  incremental?: boolean;
  parent?: string;
  consistency?: string;
  size?: number;
  bytes_read?: number;
  bytes_uploaded?: number;
  seconds?: number;
  disks?: number;
  unreachable?: string; // a repository that could not be read
  error?: string; // a manifest that could not be read
}

export interface Schedule {
  id: string;
  vms: string[];
  repo: string;
  daily: string;
  keep?: Record<string, number>;
  created?: number;
  last_run?: number;
  last_result?: string;
  next_run?: number;
}

export interface Drill {
  id: string;
  vm: string;
  repo: string;
  day: string;
  time: string;
  check?: string;
  timeout?: number;
  last_run?: number;
  last_result?: string;
  last_recovery_seconds?: number;
  last_backup?: string;
  next_run?: number;
}

export interface Snapshot {
  name: string;
  parent?: string;
  created?: number;
  memory?: boolean;
  description?: string;
}

export interface SnapshotTree {
  current?: string;
  snapshots: Snapshot[];
}

export interface HostInfo {
  hostname: string;
  version?: string;
  accel?: string;
  accel_reason?: string;
  vms?: number;
}

export interface HostCheck {
  name: string;
  status: 'ok' | 'warn' | 'fail' | string;
  detail?: string;
  advice?: string;
}

/** online: its lease is alive; maintenance: online, takes no new VMs; lost: its lease ended. */
export type HostState = 'online' | 'maintenance' | 'lost';

/**
 * One host of the pool (GET /api/v1/hosts, src/cluster/cluster.cc ToJson).
 * Alone (pampad without --cluster) the list holds this host only, with an
 * empty url and a heartbeat_ms that is pampad's start (never renewed).
 */
export interface PoolHost {
  name: string;
  state: HostState;
  /** The API address peers use, "http://ADDR:PORT"; "" when alone. */
  url: string;
  version: string;
  cpus: number;
  memory_bytes: number;
  /** CPUs and memory (bytes) of the VMs running on it. */
  cpus_committed: number;
  memory_committed: number;
  vms: number;
  running: number;
  /** Wall clock (unix ms) of its record's last write; rewritten every 10 s in a pool. */
  heartbeat_ms: number;
  /** How old that was when pampad answered; -1 when never recorded. */
  heartbeat_age_ms: number;
  maintenance: boolean;
  /** True in a pool (pampad started with --cluster); false for a host alone. */
  pooled?: boolean;
  /** The storage pools and networks it reaches (may be empty). */
  pools?: string[];
  networks?: string[];
}

/**
 * An HA VM as GET /api/v1/ha tells it (src/cluster/ha.h HaState): started
 * (runs on its host), stopped (by its user: HA leaves it be), fenced (its
 * host is lost: waiting to be placed), recovering (given to the host `to`,
 * which is starting it), restarting (crashed; its own host starts it again),
 * failed (every try failed; a user's start clears it).
 */
export type HaState = 'started' | 'stopped' | 'fenced' | 'recovering' | 'restarting' | 'failed';

export interface HaVm {
  name: string;
  host: string;
  priority: number;
  state: HaState | string;
  /** Why it is not started ('' when nothing to say). */
  reason: string;
  /** Starts tried so far, while a recovery is recorded. */
  tries?: number;
  /** The host a recovering VM was given. */
  to?: string;
}

/** One decision of the HA manager or a host, e.g. a VM started elsewhere. */
export interface HaEvent {
  time_ms: number;
  host: string;
  /** '' for the pool's own events (a new manager). */
  vm: string;
  message: string;
}

/** GET /api/v1/ha. */
export interface HaStatus {
  /** The host that is HA manager; '' when none is yet. */
  manager: string;
  /** False for a host alone (pampad without --cluster): HA does nothing. */
  enabled: boolean;
  settings: {
    heartbeat_ms: number;
    /** A host whose lease was not renewed for this long is lost; its HA VMs start elsewhere. */
    lease_ms: number;
    /** A host that could not renew its lease for this long stops its HA VMs itself. */
    fence_after_ms: number;
    /** Starts of one VM before it is failed. */
    max_tries: number;
  };
  vms: HaVm[];
  /** Oldest first, the last 50. */
  events: HaEvent[];
}

/** POST /api/v1/hosts/{host}/maintenance: a task when turned on (the evacuation). */
export interface MaintenanceReply {
  host: string;
  maintenance: boolean;
  task?: string;
}

/** The body of POST /api/v1/vms/{name}/migrate. */
export interface MigrateRequest {
  to: string;
  /** MiB/s, 1..1000000; absent: as fast as the link goes. */
  bandwidth_mib?: number;
  /** How long the guest may stop at the switch, 1..60000 ms; absent: 100. */
  max_downtime_ms?: number;
}

/** POST /api/v1/vms/{name}/migrate answers 202 with the task that moves it. */
export interface MigrateReply {
  task: string;
  vm: string;
  to: string;
}

/**
 * The body of POST /api/v1/vms/{name}/clone. pampad refuses linked with
 * snapshot or pool, linked from a VM that is no template, and a running
 * source without a snapshot.
 */
export interface CloneRequest {
  name: string;
  /** qcow2 overlays on a template's disks instead of copies. */
  linked?: boolean;
  /** Copy the disks as this snapshot of the source has them. */
  snapshot?: string;
  /** Where a full copy's disks go; absent: the source's pools. */
  pool?: string;
}

/**
 * The device fields of PATCH /api/v1/vms/{name}; only those given change and
 * pampad answers with the updated VM. While QEMU runs (running or paused)
 * they are hot-plugged (any disk or NIC can leave; the others keep their
 * slots), with pampad's refusal: a sata disk neither joins nor leaves. A VM with snapshots
 * keeps its disks as they are.
 */
export interface DeviceChange {
  /** Blank disks by size ("10G", "512M"; put in the first disk's pool) or existing volumes ("POOL/VOLUME"). */
  add_disks?: string[];
  /** The bus of this request's add_disks; absent: virtio. */
  disk_bus?: DiskBus;
  /** A disk's number, 0 the first. */
  remove_disk?: number;
  /** With remove_disk: the volume stays in its pool (absent: it is deleted). */
  keep_volume?: boolean;
  /** A MAC left out is picked by pampad. */
  add_nics?: { network: string; mac?: string }[];
  remove_nic?: number;
  /** An ISO's path on the host; "" ejects. Changes the disc of a running VM too. */
  cdrom?: string;
}

/** POST /api/v1/vms/{name}/clone answers 202 with the task (a "vm-clone" on the new VM). */
export interface CloneReply {
  task: string;
  vm: string;
  host?: string;
}

/** A vm-migrate task's result: live (it ran) or cold (it was stopped: no downtime). */
export interface MigrationResult {
  from: string;
  to: string;
  live: boolean;
  total_ms: number;
  downtime_ms?: number;
  qemu_downtime_ms?: number;
  qemu_total_ms?: number;
  /** Bytes of memory sent. */
  transferred?: number;
}

/** A host-evacuate task's result (maintenance on). */
export interface EvacuationResult {
  moved: { vm: string; to: string; downtime_ms: number }[];
}

export type TicketKind = 'events' | 'console' | 'vnc';

/** One message on /api/v1/events. */
export type PampaEvent =
  | { type: 'vm'; vm: string; state: string; reason?: string; created?: boolean; restored?: string }
  | { type: 'task'; task: Task }
  | { type: 'snapshot'; vm: string; snapshot: string; action: string }
  | { type: 'backup'; vm: string; backup: string; action: string }
  | { type: string; [key: string]: unknown };
