import { describe, expect, it } from 'vitest';
import type { Task } from '../api/types';
import { latestTaskId } from './tasks';

describe('latestTaskId', () => {
  const tasks: Task[] = [
    { id: 'old', type: 'vm-migrate', target: 'web', state: 'succeeded', started: 1 },
    { id: 'new', type: 'vm-migrate', target: 'web', state: 'running', started: 5 },
    { id: 'other-vm', type: 'vm-migrate', target: 'db', state: 'running', started: 9 },
    { id: 'other-kind', type: 'backup', target: 'web', state: 'running', started: 9 },
    { id: 'by-kind', kind: 'host-evacuate', target: 'h1', state: 'failed', started: 2 },
  ];
  it('picks the newest task of the kind on the target', () => {
    expect(latestTaskId(tasks, 'vm-migrate', 'web')).toBe('new');
    expect(latestTaskId(tasks, 'host-evacuate', 'h1')).toBe('by-kind');
  });
  it('is null when there is none', () => {
    expect(latestTaskId(tasks, 'vm-migrate', 'nope')).toBeNull();
    expect(latestTaskId([], 'backup', 'web')).toBeNull();
  });
});
