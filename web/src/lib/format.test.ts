import { describe, expect, it } from 'vitest';
import {
  estimateEta,
  formatBytes,
  formatDuration,
  formatMib,
  formatMs,
  formatPercent,
  formatRate,
  formatRelative,
  formatTime,
  parseSizeMib,
  stateLabel,
  stateTone,
  taskKind,
  volumeNameFor,
} from './format';
import { parseIpOutput } from './guestnet';

describe('formatBytes', () => {
  it('uses binary units with sensible digits', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1 KiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(10 * 1024 * 1024 + 512 * 1024)).toBe('10.5 MiB');
    expect(formatBytes(256 * 1024 ** 3)).toBe('256 GiB');
    expect(formatBytes(2.25 * 1024 ** 4)).toBe('2.25 TiB');
  });
  it('shows a dash for missing values', () => {
    expect(formatBytes(undefined)).toBe('—');
    expect(formatBytes(NaN)).toBe('—');
  });
  it('formats MiB from the API', () => {
    expect(formatMib(256)).toBe('256 MiB');
    expect(formatMib(2048)).toBe('2 GiB');
  });
});

describe('formatRate', () => {
  it('appends /s', () => {
    expect(formatRate(12.5 * 1024 * 1024)).toBe('12.5 MiB/s');
    expect(formatRate(undefined)).toBe('—');
  });
});

describe('formatDuration', () => {
  it('reads naturally at every scale', () => {
    expect(formatDuration(0.42)).toBe('0.4 s');
    expect(formatDuration(5)).toBe('5 s');
    expect(formatDuration(45)).toBe('45 s');
    expect(formatDuration(200)).toBe('3 min 20 s');
    expect(formatDuration(120)).toBe('2 min');
    expect(formatDuration(2 * 3600 + 5 * 60)).toBe('2 h 5 min');
    expect(formatDuration(3 * 86400 + 4 * 3600)).toBe('3 d 4 h');
  });
  it('shows a dash for nonsense', () => {
    expect(formatDuration(-1)).toBe('—');
    expect(formatDuration(undefined)).toBe('—');
  });
});

describe('formatRelative', () => {
  const now = Date.UTC(2025, 2, 1, 12, 0, 0);
  it('says how long ago or how soon', () => {
    expect(formatRelative(now - 10_000, now)).toBe('just now');
    expect(formatRelative(now - 5 * 60_000, now)).toBe('5 min ago');
    expect(formatRelative(now - 3 * 3600_000, now)).toBe('3 h ago');
    expect(formatRelative(now - 2 * 86400_000, now)).toBe('2 d ago');
    expect(formatRelative(now + 2 * 3600_000, now)).toBe('in 2 h');
    expect(formatRelative(now + 10_000, now)).toBe('in a moment');
  });
  it('says never for 0 and a date for long ago', () => {
    expect(formatRelative(0, now)).toBe('never');
    expect(formatRelative(now - 400 * 86400_000, now)).toBe('2024-01-26');
  });
});

describe('formatTime', () => {
  it('gives local date and time, with seconds when asked', () => {
    const t = new Date(2025, 2, 1, 14, 5, 9).getTime();
    expect(formatTime(t)).toBe('2025-03-01 14:05');
    expect(formatTime(t, true)).toBe('2025-03-01 14:05:09');
    expect(formatTime(0)).toBe('—');
  });
});

describe('state labels', () => {
  it('names every VM and task state', () => {
    expect(stateLabel('running')).toBe('Running');
    expect(stateLabel('shutting-down')).toBe('Shutting down');
    expect(stateLabel('crashed')).toBe('Crashed');
    expect(stateLabel('succeeded')).toBe('Succeeded');
    expect(stateLabel('some-new-state')).toBe('Some new state');
    expect(stateLabel(undefined)).toBe('Unknown');
  });
  it('gives each state a tone', () => {
    expect(stateTone('running')).toBe('ok');
    expect(stateTone('paused')).toBe('warn');
    expect(stateTone('crashed')).toBe('bad');
    expect(stateTone('starting')).toBe('busy');
    expect(stateTone('stopped')).toBe('idle');
  });
  it("colours an HA VM's state: started, fenced (its host lost), on its way back, failed", () => {
    expect(stateTone('started')).toBe('ok');
    expect(stateTone('fenced')).toBe('warn');
    expect(stateTone('recovering')).toBe('busy');
    expect(stateTone('restarting')).toBe('busy');
    expect(stateTone('failed')).toBe('bad');
    expect(stateLabel('recovering')).toBe('Recovering');
  });
});

describe('tasks', () => {
  it('estimates the time left from a steady pace', () => {
    const now = 100_000;
    expect(estimateEta(0.25, now - 10_000, now)).toBeCloseTo(30);
    expect(estimateEta(0, now - 10_000, now)).toBeUndefined();
    expect(estimateEta(1, now - 10_000, now)).toBeUndefined();
    expect(estimateEta(0.5, now - 1_000, now)).toBeUndefined();
  });
  it('reads the kind from type or kind', () => {
    expect(taskKind({ type: 'backup' })).toBe('backup');
    expect(taskKind({ kind: 'import' })).toBe('import');
    expect(taskKind({})).toBe('task');
  });
  it('formats percentages', () => {
    expect(formatPercent(0.423)).toBe('42 %');
    expect(formatPercent(1.2)).toBe('100 %');
  });
});

describe('formatMs', () => {
  it('keeps milliseconds under a second, seconds above', () => {
    expect(formatMs(7.6)).toBe('8 ms');
    expect(formatMs(2500)).toBe('2.5 s');
    expect(formatMs(undefined)).toBe('—');
    expect(formatMs(-1)).toBe('—');
  });
});

describe('parseSizeMib', () => {
  it('reads sizes with units', () => {
    expect(parseSizeMib('512M')).toBe(512);
    expect(parseSizeMib('2G')).toBe(2048);
    expect(parseSizeMib('1024')).toBe(1024);
    expect(parseSizeMib('1.5GiB')).toBe(1536);
    expect(parseSizeMib('lots')).toBeNaN();
  });
});

describe('parseIpOutput', () => {
  it("maps the guest's MACs to their addresses", () => {
    const out = [
      '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00',
      '2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc pfifo_fast state UP mode DEFAULT group default qlen 1000\\    link/ether 52:54:00:90:B0:49 brd ff:ff:ff:ff:ff:ff',
      '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
      '2: eth0    inet 10.88.0.12/24 brd 10.88.0.255 scope global eth0\\       valid_lft forever preferred_lft forever',
      '2: eth0    inet6 fe80::5054:ff:fe90:b049/64 scope link \\       valid_lft forever preferred_lft forever',
    ].join('\n');
    const m = parseIpOutput(out);
    expect(m.get('52:54:00:90:b0:49')).toEqual(['10.88.0.12/24']);
    expect(m.has('00:00:00:00:00:00')).toBe(false);
  });
});

describe('shallowEqual (store selections)', async () => {
  const { shallowEqual } = await import('./store');
  it('compares plain objects field by field', () => {
    const a = [1];
    expect(shallowEqual({ x: a, y: 1 }, { x: a, y: 1 })).toBe(true);
    expect(shallowEqual({ x: [1] }, { x: [1] })).toBe(false);
    expect(shallowEqual(undefined, undefined)).toBe(true);
    expect(shallowEqual({ id: 't' }, undefined)).toBe(false);
  });
});

describe('volumeNameFor', () => {
  it.each([
    ['disk.qcow2', 'disk'],
    ['Ubuntu 22.04_server.VMDK', 'ubuntu-22-04-server'],
    ['C:\\fakepath\\Win.vhdx', 'win'],
    ['noext', 'noext'],
    ['.hidden', 'hidden'],
    ['_web_.raw', 'web'],
    ['a'.repeat(80) + '.img', 'a'.repeat(63)],
  ])('%s -> %s: no extension, lower case, only [a-z0-9-], no dash at the ends, 63 at most', (file, name) => {
    expect(volumeNameFor(file)).toBe(name);
  });
});
