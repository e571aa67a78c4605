// Small shared pieces: progress bars, error boxes, state icons, the typed
// confirmation, a modal dialog, tables, selects, forms, and task following.
import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api/session';
import { messageOf } from '../api/client';
import type { Task, TaskRef, Vm } from '../api/types';
import { stateLabel, stateTone } from '../lib/format';
import { useStore } from '../lib/store';
import { store, upsertTask } from '../state';

/** A bar from 0 to 1 (clamped); tone colours it (a host nearly full, overcommitted). */
export function ProgressBar({ value, label, tone }: { value: number | undefined; label?: string; tone?: 'warn' | 'bad' }) {
  const pct = Math.round(Math.min(1, Math.max(0, value ?? 0)) * 100);
  return (
    <div
      class={tone ? `progress tone-${tone}` : 'progress'}
      role="progressbar"
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={pct}
      aria-label={label ?? 'progress'}
    >
      <div class="progress-fill" style={{ width: `${pct}%` }} />
    </div>
  );
}

/** A running task's progress bar and stage message, on one line. */
export function InlineTask({ task, label, idle }: { task: Task; label: string; idle?: string }) {
  return (
    <div class="inline-task">
      <ProgressBar value={task.progress} label={label} /> <span>{task.message || idle}</span>
    </div>
  );
}

export function ErrorBox({ message }: { message: string }) {
  if (!message) return null;
  return (
    <div class="error" role="alert">
      {message}
    </div>
  );
}

export function Notice({ children }: { children: ComponentChildren }) {
  return <div class="notice">{children}</div>;
}

/** A VM's state as a small icon (shape and colour, so not colour alone). */
export function StateIcon({ state, busy }: { state: string; busy?: string }) {
  const tone = busy ? 'busy' : stateTone(state);
  let shape: JSX.Element;
  switch (busy ? 'busy' : state) {
    case 'running':
      shape = <path d="M5 3.5v9l7.5-4.5z" />;
      break;
    case 'paused':
      shape = (
        <g>
          <rect x="4" y="3.5" width="3" height="9" rx="0.5" />
          <rect x="9" y="3.5" width="3" height="9" rx="0.5" />
        </g>
      );
      break;
    case 'crashed':
      shape = <path d="M4.2 4.2l7.6 7.6M11.8 4.2l-7.6 7.6" stroke="currentColor" stroke-width="2.2" fill="none" />;
      break;
    case 'starting':
    case 'shutting-down':
    case 'busy':
      shape = <circle cx="8" cy="8" r="4.5" stroke="currentColor" stroke-width="2" fill="none" stroke-dasharray="7 4" />;
      break;
    default:
      shape = <rect x="4" y="4" width="8" height="8" rx="1" />;
  }
  return (
    <svg class={`state-icon tone-${tone}`} viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" fill="currentColor">
      {shape}
    </svg>
  );
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge tone-${stateTone(state)}`}>{stateLabel(state)}</span>;
}

/**
 * A typed confirmation: the button works once the input holds `expected`.
 * <input data-testid="confirm-name"> plus one button, as the tests expect.
 */
export function ConfirmName(props: {
  expected: string;
  prompt: ComponentChildren;
  button: string;
  busy?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
  error?: string;
}) {
  const [typed, setTyped] = useState('');
  const ref = useRef<HTMLInputElement>(null);
  useEffect(() => ref.current?.focus(), []);
  const ok = typed === props.expected;
  return (
    <form
      class="confirm"
      onSubmit={(e) => {
        e.preventDefault();
        if (ok && !props.busy) props.onConfirm();
      }}
    >
      <p>{props.prompt}</p>
      <label>
        Type <code>{props.expected}</code> to confirm
        <input
          ref={ref}
          data-testid="confirm-name"
          autocomplete="off"
          spellcheck={false}
          value={typed}
          onInput={(e) => setTyped(e.currentTarget.value)}
        />
      </label>
      <div class="row">
        <button type="submit" class="danger" disabled={!ok || props.busy}>
          {props.button}
        </button>
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
      <ErrorBox message={props.error ?? ''} />
    </form>
  );
}

/** A modal dialog on <dialog>: Esc closes, focus stays inside. */
export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      class={props.wide ? 'modal wide' : 'modal'}
      aria-label={props.title}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <header class="modal-head">
        <h2>{props.title}</h2>
        <button type="button" class="icon" aria-label="Close" onClick={props.onClose}>
          ×
        </button>
      </header>
      {props.children}
    </dialog>
  );
}

/** The task with this id, live from the store; its log is fetched once it ends. */
export function useTask(id: string | null): Task | undefined {
  const task = useStore(store, (s) => (id ? s.tasks.find((t) => t.id === id) : undefined));
  const fetched = useRef('');
  useEffect(() => {
    if (!id || !task || task.state === 'running' || fetched.current === id) return;
    fetched.current = id;
    api.get<Task>(`/api/v1/tasks/${encodeURIComponent(id)}`).then(upsertTask, () => {});
  }, [id, task?.state]);
  return task;
}

/** Calls f once the task ends (and again if it ends anew). */
export function useOnTaskEnd(task: Task | undefined, f: () => void): void {
  useEffect(() => {
    if (task && task.state !== 'running') f();
  }, [task?.state]);
}

/** Registers a task just started so the panel shows it before its first event. */
export function trackTask(ref: TaskRef | undefined, kind: string, target: string): string | null {
  if (!ref?.task) return null;
  if (!store.get().tasks.some((t) => t.id === ref.task)) {
    upsertTask({ id: ref.task, type: kind, target, state: 'running', progress: 0, started: Date.now() });
  }
  // Without live events, ask once more soon.
  setTimeout(() => {
    api.get<Task>(`/api/v1/tasks/${encodeURIComponent(ref.task)}`).then(upsertTask, () => {});
  }, 500);
  return ref.task;
}

/** Runs one API call at a time for a button: busy flag and error message. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const run = async <T,>(f: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError('');
    try {
      return await f();
    } catch (e) {
      setError(messageOf(e));
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}

export function Field(props: { label: string; children: ComponentChildren; hint?: string }) {
  return (
    <label class="field">
      <span class="field-label">{props.label}</span>
      {props.children}
      {props.hint ? <span class="hint">{props.hint}</span> : null}
    </label>
  );
}

/**
 * A table with one header row; `empty` (when given) is shown as a single row
 * across every column. Wrapped for horizontal scrolling unless `compact`.
 */
export function DataTable(props: { columns: string[]; children: ComponentChildren; empty?: string; compact?: boolean }) {
  const table = (
    <table class={props.compact ? 'table compact' : 'table'}>
      <thead>
        <tr>
          {props.columns.map((c, i) => (
            <th key={i}>{c}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {props.children}
        {props.empty !== undefined ? (
          <tr>
            <td colSpan={props.columns.length} class="muted">
              {props.empty}
            </td>
          </tr>
        ) : null}
      </tbody>
    </table>
  );
  return props.compact ? table : <div class="table-wrap">{table}</div>;
}

/** A <select> of names (shown as `labels` says, else as they are); `blank` adds a first option with the value ''. */
export function Select(props: { name: string; value: string; options: string[]; onValue: (v: string) => void; blank?: string; labels?: Record<string, string> }) {
  return (
    <select name={props.name} value={props.value} onChange={(e) => props.onValue(e.currentTarget.value)}>
      {props.blank !== undefined ? <option value="">{props.blank}</option> : null}
      {props.options.map((o) => (
        <option key={o} value={o}>
          {props.labels?.[o] ?? o}
        </option>
      ))}
    </select>
  );
}

/** A form on one line whose submit runs `onSubmit` instead of navigating. */
export function InlineForm(props: { onSubmit: () => void; children: ComponentChildren }) {
  return (
    <form
      class="form inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        props.onSubmit();
      }}
    >
      {props.children}
    </form>
  );
}

/** A labelled text input (or number, with type); onValue gets what is typed. */
export function TextField({ label, hint, onValue, ...input }: { label: string; hint?: string; onValue: (v: string) => void } & Omit<JSX.InputHTMLAttributes<HTMLInputElement>, 'label' | 'onInput'>) {
  return (
    <Field label={label} hint={hint}>
      <input {...input} onInput={(e) => onValue(e.currentTarget.value)} />
    </Field>
  );
}

/** A table row's Delete: asks first, then runs remove as the row's action. */
export function DeleteButton(props: { label: string; question: string; busy: boolean; run: (f: () => Promise<void>) => unknown; remove: () => Promise<void> }) {
  return (
    <button
      type="button"
      class="small danger-outline"
      disabled={props.busy}
      aria-label={props.label}
      onClick={() =>
        props.run(async () => {
          if (!window.confirm(props.question)) return;
          await props.remove();
        })
      }
    >
      Delete
    </button>
  );
}

/** A VM's state in a table cell: icon, label, what it is busy with, and why (reason). */
export function VmStateCell({ vm, reason }: { vm: Vm; reason?: boolean }) {
  return (
    <td>
      <StateIcon state={vm.state} busy={vm.busy} /> {stateLabel(vm.state)}
      {vm.busy ? <span class="muted"> ({vm.busy})</span> : null}
      {reason && vm.reason ? <div class="muted">{vm.reason}</div> : null}
    </td>
  );
}

/** The button of a dialog that follows a task: it may be hidden while the task goes on. */
export function TaskDialogClose({ task, onClose }: { task: Task; onClose: () => void }) {
  return (
    <div class="row">
      <button type="button" onClick={onClose}>
        {task.state === 'running' ? 'Hide (it goes on)' : 'Close'}
      </button>
    </div>
  );
}

/** A dialog form's submit and Cancel buttons. */
export function FormButtons(props: { label: string; busyLabel: string; busy: boolean; disabled?: boolean; onCancel: () => void }) {
  return (
    <div class="row">
      <button type="submit" class="primary" disabled={props.busy || props.disabled}>
        {props.busy ? props.busyLabel : props.label}
      </button>
      <button type="button" onClick={props.onCancel}>
        Cancel
      </button>
    </div>
  );
}
