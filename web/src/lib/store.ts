// A tiny observable store: the app's shared view of pampad (VMs, tasks,
// pools, networks, repositories, host), kept fresh by the events socket.
import { useEffect, useReducer, useRef } from 'preact/hooks';

export type Listener = () => void;

export class Store<S extends object> {
  private state: S;
  private listeners = new Set<Listener>();
  constructor(initial: S) {
    this.state = initial;
  }
  get(): S {
    return this.state;
  }
  set(patch: Partial<S> | ((s: S) => Partial<S>)): void {
    const p = typeof patch === 'function' ? patch(this.state) : patch;
    this.state = { ...this.state, ...p };
    for (const l of this.listeners) l();
  }
  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

/** Equal by identity, or plain objects whose fields are equal by identity. */
export function shallowEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) || Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.is((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/**
 * The selected part of the store; re-renders when it changes (shallowly).
 * The selector may close over props: the latest one is always used.
 */
export function useStore<S extends object, T>(store: Store<S>, select: (s: S) => T): T {
  const [, force] = useReducer((n: number) => n + 1, 0);
  const value = select(store.get());
  const latest = useRef({ select, value });
  latest.current = { select, value };
  useEffect(
    () =>
      store.subscribe(() => {
        const { select: sel, value: old } = latest.current;
        if (!shallowEqual(sel(store.get()), old)) force(0);
      }),
    [store],
  );
  return value;
}
