// How numbers, times and states read in the console. Pure functions, unit
// tested in format.test.ts.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 -> "1.5 KiB"; binary units as the CLI prints them. */
export function formatBytes(n: number | undefined | null): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return '—';
  if (n < 0) return '-' + formatBytes(-n);
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${Math.round(v)} B`;
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${trim(v.toFixed(digits))} ${UNITS[i]}`;
}

function trim(s: string): string {
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/** MiB from the API -> "256 MiB" / "2 GiB". */
export function formatMib(mib: number | undefined): string {
  if (mib === undefined) return '—';
  return formatBytes(mib * 1024 * 1024);
}

/** Bytes per second -> "12.5 MiB/s". */
export function formatRate(bytesPerSecond: number | undefined | null): string {
  if (bytesPerSecond === undefined || bytesPerSecond === null || !Number.isFinite(bytesPerSecond)) return '—';
  return formatBytes(bytesPerSecond) + '/s';
}

/** Seconds -> "45 s", "3 min 20 s", "2 h 5 min", "3 d 4 h". */
export function formatDuration(seconds: number | undefined | null): string {
  if (seconds === undefined || seconds === null || !Number.isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 10) return `${trim(seconds.toFixed(1))} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** 42 -> "42 ms", 3200 -> "3.2 s". */
export function formatMs(ms: number | undefined | null): string {
  if (ms === undefined || ms === null || !Number.isFinite(ms) || ms < 0) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : formatDuration(ms / 1000);
}

/** A unix-ms time against now -> "just now", "5 min ago", "in 2 h", "3 d ago". */
export function formatRelative(ms: number | undefined | null, now = Date.now()): string {
  if (!ms) return 'never';
  const diff = (now - ms) / 1000;
  const future = diff < 0;
  const a = Math.abs(diff);
  if (a < 45) return future ? 'in a moment' : 'just now';
  let text: string;
  if (a < 3600) text = `${Math.round(a / 60)} min`;
  else if (a < 86400) text = `${Math.round(a / 3600)} h`;
  else if (a < 86400 * 45) text = `${Math.round(a / 86400)} d`;
  else return new Date(ms).toISOString().slice(0, 10);
  return future ? `in ${text}` : `${text} ago`;
}

/** A unix-ms time as local date and time, "2025-03-01 14:05" (with seconds: "14:05:09"). */
export function formatTime(ms: number | undefined | null, seconds = false): string {
  if (!ms) return '—';
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  const time = `${p(d.getHours())}:${p(d.getMinutes())}${seconds ? ':' + p(d.getSeconds()) : ''}`;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${time}`;
}

/** 0..1 -> "42 %". */
export function formatPercent(fraction: number | undefined): string {
  if (fraction === undefined || !Number.isFinite(fraction)) return '—';
  return `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)} %`;
}

const STATE_LABELS: Record<string, string> = {
  stopped: 'Stopped',
  starting: 'Starting',
  running: 'Running',
  paused: 'Paused',
  'shutting-down': 'Shutting down',
  crashed: 'Crashed',
  deleted: 'Deleted',
  succeeded: 'Succeeded',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

/** A state from the API -> the words shown. */
export function stateLabel(state: string | undefined): string {
  if (!state) return 'Unknown';
  return STATE_LABELS[state] ?? state.charAt(0).toUpperCase() + state.slice(1).replace(/-/g, ' ');
}

/** The colour class of a state: ok, warn, bad, busy or idle. */
export function stateTone(state: string | undefined): 'ok' | 'warn' | 'bad' | 'busy' | 'idle' {
  switch (state) {
    case 'running':
    case 'succeeded':
    case 'ok':
    case 'online':
    case 'started': // an HA VM's (lib/ha.ts)
      return 'ok';
    case 'paused':
    case 'warn':
    case 'maintenance':
    case 'cancelled':
    case 'fenced':
      return 'warn';
    case 'crashed':
    case 'failed':
    case 'fail':
    case 'lost':
      return 'bad';
    case 'starting':
    case 'shutting-down':
    case 'recovering':
    case 'restarting':
      return 'busy';
    default:
      return 'idle';
  }
}

/**
 * Seconds left for a task at `progress` (0..1) that started at `started`
 * (unix ms), assuming a steady pace; undefined when it cannot be told yet.
 */
export function estimateEta(progress: number | undefined, started: number | undefined, now = Date.now()): number | undefined {
  if (!progress || !started || progress <= 0.01 || progress >= 1) return undefined;
  const elapsed = (now - started) / 1000;
  if (elapsed < 2) return undefined;
  return (elapsed * (1 - progress)) / progress;
}

/** The task kind: pampad names it "type" (older notes say "kind"). */
export function taskKind(t: { type?: string; kind?: string }): string {
  return t.type || t.kind || 'task';
}

/** The firmware a VM boots with, and how the console names it. */
export const FIRMWARE = ['bios', 'uefi'];
export const FIRMWARE_LABELS: Record<string, string> = { bios: 'BIOS', uefi: 'UEFI' };

/** "512M" / "2G" / "1024" (MiB) -> MiB, or NaN. */
export function parseSizeMib(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return NaN;
  const v = parseFloat(m[1]);
  switch (m[2].toLowerCase()) {
    case 'k':
      return v / 1024;
    case 'g':
      return v * 1024;
    case 't':
      return v * 1024 * 1024;
    default:
      return v;
  }
}

/**
 * A volume name for an uploaded file: its name without the extension,
 * lower-cased, every character a name may not hold replaced by '-' (names
 * are [a-z0-9][a-z0-9-]{0,62}: no dash at the ends, 63 characters at most).
 */
export function volumeNameFor(fileName: string): string {
  const base = fileName.replace(/^.*[\\/]/, '');
  const stem = base.lastIndexOf('.') > 0 ? base.slice(0, base.lastIndexOf('.')) : base;
  return stem
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 63)
    .replace(/^-+|-+$/g, '');
}
