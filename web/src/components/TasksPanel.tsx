// The tasks panel at the bottom: every running task with its live progress,
// stage, pace and ETA, and a Cancel button; finished tasks with their log,
// a failed one with its error.
import { useState } from 'preact/hooks';
import { api } from '../api/session';
import { messageOf } from '../api/client';
import type { Task } from '../api/types';
import { estimateEta, formatDuration, formatPercent, formatRelative, stateLabel, taskKind } from '../lib/format';
import { useStore } from '../lib/store';
import { useNow } from '../lib/useNow';
import { store, upsertTask } from '../state';
import { ProgressBar } from './ui';

const SHOWN_FINISHED = 30;

function TaskRow({ task, now }: { task: Task; now: number }) {
  const [open, setOpen] = useState(false);
  const [error, setError] = useState('');
  const [cancelling, setCancelling] = useState(false);
  const running = task.state === 'running';
  const eta = running ? estimateEta(task.progress, task.started, now) : undefined;
  const elapsed = task.started ? ((task.finished || now) - task.started) / 1000 : undefined;

  const toggle = async () => {
    const next = !open;
    setOpen(next);
    if (next && !task.log) {
      try {
        upsertTask(await api.get<Task>(`/api/v1/tasks/${encodeURIComponent(task.id)}`));
      } catch (e) {
        setError(messageOf(e));
      }
    }
  };
  const cancel = async () => {
    setCancelling(true);
    setError('');
    try {
      await api.post(`/api/v1/tasks/${encodeURIComponent(task.id)}/cancel`);
    } catch (e) {
      setError(messageOf(e));
      setCancelling(false);
    }
  };

  return (
    <li class={`task task-${task.state}`} data-testid={`task-${task.id}`} data-state={task.state}>
      <div class="task-line">
        <button type="button" class="twisty" aria-expanded={open} aria-label={`${open ? 'Hide' : 'Show'} the log of task ${task.id}`} onClick={toggle}>
          {open ? '▾' : '▸'}
        </button>
        <span class="task-kind">{taskKind(task)}</span>
        <span class="task-target">{task.target}</span>
        {running ? (
          <>
            <ProgressBar value={task.progress} label={`${taskKind(task)} ${task.target ?? ''}`} />
            <span class="task-pct">{formatPercent(task.progress)}</span>
          </>
        ) : (
          <span class={`badge tone-${task.state === 'succeeded' ? 'ok' : task.state === 'failed' ? 'bad' : 'warn'}`}>
            {stateLabel(task.state)}
          </span>
        )}
        <span class="task-stage" title={task.message}>
          {task.state === 'failed' ? '' : task.message}
        </span>
        <span class="task-time">
          {running
            ? `${formatDuration(elapsed)}${eta !== undefined ? ` · ETA ${formatDuration(eta)}` : ''}`
            : `${formatRelative(task.finished, now)}${elapsed !== undefined ? ` · took ${formatDuration(elapsed)}` : ''}`}
        </span>
        {running ? (
          <button type="button" class="small" onClick={cancel} disabled={cancelling}>
            {cancelling ? 'Cancelling…' : 'Cancel'}
          </button>
        ) : null}
      </div>
      {task.state === 'failed' && task.error ? <div class="task-error">{task.error}</div> : null}
      {error ? (
        <div class="task-error" role="alert">
          {error}
        </div>
      ) : null}
      {open ? (
        <pre class="task-log">
          {(task.log && task.log.length ? task.log.join('\n') : '(no log lines)') +
            (task.result !== undefined && task.result !== null && !running ? '\n\nresult: ' + JSON.stringify(task.result, null, 2) : '')}
        </pre>
      ) : null}
    </li>
  );
}

export function TasksPanel() {
  const tasks = useStore(store, (s) => s.tasks);
  const [collapsed, setCollapsed] = useState(false);
  const now = useNow(1000);
  const running = tasks.filter((t) => t.state === 'running').sort((a, b) => (b.started ?? 0) - (a.started ?? 0));
  const finished = tasks
    .filter((t) => t.state !== 'running')
    .sort((a, b) => (b.finished || b.started || 0) - (a.finished || a.started || 0))
    .slice(0, SHOWN_FINISHED);
  const failed = finished.filter((t) => t.state === 'failed').length;

  return (
    <section class={collapsed ? 'tasks collapsed' : 'tasks'} data-testid="tasks" aria-label="Tasks">
      <header class="tasks-head">
        <button type="button" class="twisty" aria-expanded={!collapsed} onClick={() => setCollapsed(!collapsed)}>
          {collapsed ? '▴' : '▾'} Tasks
        </button>
        <span class="muted">
          {running.length} running{failed ? ` · ${failed} failed recently` : ''}
        </span>
      </header>
      {collapsed ? null : (
        <ul class="task-list">
          {running.map((t) => (
            <TaskRow key={t.id} task={t} now={now} />
          ))}
          {finished.map((t) => (
            <TaskRow key={t.id} task={t} now={now} />
          ))}
          {tasks.length === 0 ? <li class="muted task-empty">No tasks yet.</li> : null}
        </ul>
      )}
    </section>
  );
}
