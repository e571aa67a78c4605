// Picking tasks out of the store's list. Pure, unit tested in tasks.test.ts.
import type { Task } from '../api/types';
import { taskKind } from './format';

/** The id of the newest task of this kind on this target, or null. */
export function latestTaskId(tasks: Task[], kind: string, target: string): string | null {
  let best: Task | undefined;
  for (const t of tasks) {
    if (taskKind(t) === kind && t.target === target && (!best || (t.started ?? 0) > (best.started ?? 0))) best = t;
  }
  return best?.id ?? null;
}
