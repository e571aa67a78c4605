// One VM: its header with the actions its state allows, and the tabs.
import { useEffect, useState } from 'preact/hooks';
import { lazy, Suspense } from 'preact/compat';
import { api } from '../api/session';
import { ApiError, vmPath } from '../api/client';
import type { TaskRef, Vm } from '../api/types';
import { renameRequest, VM_NAME_PATTERN } from '../lib/clone';
import { stateLabel } from '../lib/format';
import { isPool, migrateBlocker } from '../lib/pool';
import { latestTaskId } from '../lib/tasks';
import { navigate, vmHref } from '../lib/router';
import { useStore } from '../lib/store';
import { refreshVm, refreshVms, removeVm, store, upsertVm } from '../state';
import { ConfirmName, ErrorBox, InlineForm, StateBadge, StateIcon, TextField, trackTask, useAction, useOnTaskEnd, useTask } from '../components/ui';
import { CloneDialog, CloneTask } from './CloneDialog';
import { MigrateDialog, MigrationTask } from './MigrateDialog';
import { VmSummary } from './VmSummary';
import { VmConfig } from './VmConfig';
import { VmHardware } from './VmHardware';
import { VmSnapshots } from './VmSnapshots';
import { VmBackups } from './VmBackups';

// The console tab pulls in noVNC and xterm.js, the performance tab uPlot:
// loaded on first use only.
const VmConsole = lazy(() => import('./VmConsole').then((m) => ({ default: m.VmConsole })));
const VmPerformance = lazy(() => import('./VmPerformance').then((m) => ({ default: m.VmPerformance })));

const TABS: [string, string][] = [
  ['summary', 'Summary'],
  ['console', 'Console'],
  ['performance', 'Performance'],
  ['snapshots', 'Snapshots'],
  ['backups', 'Backups'],
  ['hardware', 'Hardware'],
  ['config', 'Configuration'],
];

// Button label and API call per action, in the order they are shown.
const ACTIONS: [string, string][] = [
  ['start', 'Start'],
  ['shutdown', 'Shutdown'],
  ['stop', 'Stop'],
  ['reboot', 'Reboot'],
  ['pause', 'Pause'],
  ['resume', 'Resume'],
  ['clone', 'Clone…'],
  ['rename', 'Rename…'],
  ['template', 'Make template…'],
  ['delete', 'Delete'],
];

const ACTION_TITLES: Record<string, string> = {
  clone: 'a new VM from this one: a full copy, of a snapshot, or linked to a template',
  rename: 'give it a new name (stopped VMs only)',
  template: 'make it a template that is only cloned: it never starts or changes again',
};

/** What the buttons offer when pampad sent no "actions" (older daemons). */
function fallbackActions(state: string): string[] {
  switch (state) {
    case 'stopped':
    case 'crashed':
      return ['start', 'delete'];
    case 'running':
      return ['shutdown', 'stop', 'reboot', 'pause'];
    case 'paused':
      return ['resume', 'stop'];
    case 'shutting-down':
      return ['stop'];
    default:
      return [];
  }
}

/**
 * Migrate, in a pool only: off (saying why) while the VM cannot move. The
 * move's task shows under the actions, also one started elsewhere (the CLI,
 * another tab) once it is seen running.
 */
function useMigration(vm: Vm) {
  const hosts = useStore(store, (s) => s.hosts);
  const pooled = isPool(hosts);
  const [dialog, setDialog] = useState(false);
  const [taskId, setTaskId] = useState<string | null>(null);
  const running = useStore(store, (s) => {
    const id = latestTaskId(s.tasks, 'vm-migrate', vm.name);
    return id && s.tasks.find((t) => t.id === id)?.state === 'running' ? id : null;
  });
  useEffect(() => {
    if (running) setTaskId(running);
  }, [running]);
  const task = useTask(taskId);
  const blocker = !pooled ? '' : task?.state === 'running' ? 'moving already' : migrateBlocker(hosts, vm);
  const open = () => {
    setTaskId(null); // the form, not the last move's result
    setDialog(true);
  };
  return { pooled, blocker, dialog, open, close: () => setDialog(false), task, setTaskId };
}

/** Clone: the dialog, and the task it started, shown on once the dialog is hidden. */
function useClone() {
  const [dialog, setDialog] = useState(false);
  const [taskId, setTaskId] = useState<string | null>(null);
  const task = useTask(taskId);
  // Without live events the list may not have the new VM yet.
  useOnTaskEnd(task, () => {
    if (task?.state === 'succeeded') void refreshVms().catch(() => {});
  });
  const open = () => {
    setTaskId(null); // the form, not the last clone's result
    setDialog(true);
  };
  return { dialog, open, close: () => setDialog(false), task, setTaskId };
}

/** Rename, inline in place of the actions: the new name, then the new name's page. */
function RenameForm({ vm, tab, onCancel }: { vm: Vm; tab: string; onCancel: () => void }) {
  const [to, setTo] = useState('');
  const { busy, error, setError, run } = useAction();
  const submit = () => {
    const req = renameRequest(to, vm);
    if ('error' in req) {
      setError(req.error);
      return;
    }
    run(async () => {
      const renamed = await api.post<Vm>(vmPath(vm.name, '/rename'), req.body);
      upsertVm(renamed);
      // The old name goes once the new page shows: gone before, this page
      // would say "does not exist" for a moment.
      window.addEventListener('hashchange', () => removeVm(vm.name), { once: true });
      navigate(vmHref(renamed.name, tab));
    });
  };
  return (
    <div class="actions" data-testid="rename-form">
      <InlineForm onSubmit={submit}>
        <TextField
          label={`New name for ${vm.name}`}
          hint="its snapshots, backups and schedules follow; its volumes keep their names"
          name="new-name"
          required
          autofocus
          maxLength={63}
          pattern={VM_NAME_PATTERN}
          value={to}
          onValue={setTo}
        />
        <button type="submit" class="primary" disabled={busy || !to.trim()}>
          {busy ? 'Renaming…' : 'Rename'}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </InlineForm>
      <ErrorBox message={error} />
    </div>
  );
}

/** Make template, asked first: it cannot be undone. */
function TemplateConfirm({ vm, onDone }: { vm: Vm; onDone: () => void }) {
  const { busy, error, run } = useAction();
  const make = () =>
    run(async () => {
      upsertVm(await api.post<Vm>(vmPath(vm.name, '/template'), {}));
      onDone();
    });
  return (
    <div class="actions">
      <div class="confirm" data-testid="template-confirm">
        <p>
          Make <strong>{vm.name}</strong> a template? It will never start or change again: it is only cloned (linked clones read its disks), backed up,
          renamed or deleted. This cannot be undone.
        </p>
        <div class="row">
          <button type="button" class="danger" data-testid="template-confirm-yes" disabled={busy} onClick={make}>
            {busy ? 'Making it a template…' : 'Make it a template'}
          </button>
          <button type="button" onClick={onDone}>
            Cancel
          </button>
        </div>
        <ErrorBox message={error} />
      </div>
    </div>
  );
}

function ActionBar({ vm, tab }: { vm: Vm; tab: string }) {
  const { busy, error, setError, run } = useAction();
  // An action that takes the bar's place: delete's typed name, rename's form, make template's question.
  const [asking, setAsking] = useState<'' | 'delete' | 'rename' | 'template'>('');
  const [force, setForce] = useState(false);
  const migration = useMigration(vm);
  const clone = useClone();
  const allowed = vm.actions ?? fallbackActions(vm.state);

  const act = async (action: string) => {
    if (action === 'delete' || action === 'rename' || action === 'template') {
      setAsking(action);
      return;
    }
    if (action === 'clone') {
      clone.open();
      return;
    }
    setForce(false);
    await run(async () => {
      try {
        if (action === 'shutdown') {
          const ref = await api.post<TaskRef>(vmPath(vm.name, '/shutdown'), {});
          trackTask(ref, 'shutdown', vm.name);
          await refreshVm(vm.name);
        } else {
          upsertVm(await api.post<Vm>(vmPath(vm.name, '/' + action), {}));
        }
      } catch (e) {
        // More memory than the host has: pampad refuses unless forced.
        if (action === 'start' && e instanceof ApiError && e.status === 409 && /memory/i.test(e.message)) setForce(true);
        throw e;
      }
    });
  };

  if (asking === 'rename') return <RenameForm vm={vm} tab={tab} onCancel={() => setAsking('')} />;
  if (asking === 'template') return <TemplateConfirm vm={vm} onDone={() => setAsking('')} />;
  if (asking === 'delete') {
    return (
      <div class="actions">
        <ConfirmName
          expected={vm.name}
          prompt={
            <>
              Delete <strong>{vm.name}</strong> and all its disks? This cannot be undone (backups stay).
            </>
          }
          button="Delete"
          busy={busy}
          error={error}
          onCancel={() => {
            setAsking('');
            setError('');
          }}
          onConfirm={() =>
            run(async () => {
              await api.del(vmPath(vm.name));
              store.set((s) => ({ vms: s.vms.filter((v) => v.name !== vm.name) }));
              navigate('#/');
            })
          }
        />
      </div>
    );
  }

  const button = ([a, label]: [string, string]) => (
    <button
      key={a}
      type="button"
      class={a === 'delete' || a === 'stop' ? 'danger-outline' : a === 'start' ? 'primary' : ''}
      data-testid={`vm-action-${a}`}
      title={ACTION_TITLES[a]}
      disabled={busy || (a === 'clone' && clone.task?.state === 'running')}
      onClick={() => act(a)}
    >
      {label}
    </button>
  );
  const shown = ACTIONS.filter(([a]) => allowed.includes(a));
  const last = ['clone', 'rename', 'template', 'delete'];
  return (
    <>
      <div class="actions" role="toolbar" aria-label="VM actions">
        {shown.filter(([a]) => !last.includes(a)).map(button)}
        {migration.pooled ? (
          <button type="button" disabled={busy || !!migration.blocker} title={migration.blocker || 'move it to another host of the pool'} onClick={migration.open}>
            Migrate
          </button>
        ) : null}
        {shown.filter(([a]) => last.includes(a)).map(button)}
        {vm.busy ? <span class="muted">busy: {vm.busy}</span> : null}
        {allowed.length === 0 && !vm.busy ? <span class="muted">no actions in this state</span> : null}
        <ErrorBox message={error} />
        {force ? (
          <button
            type="button"
            class="danger-outline"
            onClick={() =>
              run(async () => {
                setForce(false);
                upsertVm(await api.post<Vm>(vmPath(vm.name, '/start'), { force: true }));
              })
            }
          >
            Start anyway
          </button>
        ) : null}
      </div>
      {migration.dialog ? (
        <MigrateDialog vm={vm} task={migration.task} onClose={migration.close} onStarted={migration.setTaskId} />
      ) : migration.task ? (
        <MigrationTask task={migration.task} />
      ) : null}
      {clone.dialog ? <CloneDialog vm={vm} task={clone.task} onClose={clone.close} onStarted={clone.setTaskId} /> : clone.task ? <CloneTask task={clone.task} /> : null}
    </>
  );
}

export function VmPage({ name, tab }: { name: string; tab: string }) {
  const vm = useStore(store, (s) => s.vms.find((v) => v.name === name));
  const loaded = useStore(store, (s) => s.vmsLoaded);
  const [error, setError] = useState('');

  useEffect(() => {
    refreshVm(name).catch((e) => setError(e instanceof Error ? e.message : String(e)));
  }, [name]);

  if (!vm) {
    return (
      <div class="page">
        <h1>{name}</h1>
        {error || loaded ? <ErrorBox message={error || `vm '${name}' does not exist`} /> : <p class="muted">Loading…</p>}
      </div>
    );
  }

  return (
    <div class="page vm-page">
      <header class="vm-head">
        <h1>
          <StateIcon state={vm.state} busy={vm.busy} /> {vm.name}
        </h1>
        <StateBadge state={vm.state} />
        {vm.template ? (
          <span class="badge" data-testid="template-badge" title="it never starts or changes; make VMs from it with Clone…">
            template
          </span>
        ) : null}
        {vm.reason ? <span class="muted">{vm.reason}</span> : null}
      </header>
      <ActionBar vm={vm} tab={tab} />
      <div class="tabs" role="tablist" aria-label={`${vm.name} views`}>
        {TABS.map(([id, label]) => (
          <button
            key={id}
            type="button"
            class={tab === id ? 'tab current' : 'tab'}
            aria-current={tab === id ? 'page' : undefined}
            onClick={() => navigate(vmHref(name, id))}
          >
            {label}
          </button>
        ))}
      </div>
      <section class="tab-body" aria-label={`${stateLabel(vm.state)} VM ${vm.name}`}>
        {tab === 'summary' ? <VmSummary vm={vm} /> : null}
        {tab === 'console' ? (
          <Suspense fallback={<p class="muted">Loading the console…</p>}>
            <VmConsole vm={vm} />
          </Suspense>
        ) : null}
        {tab === 'performance' ? (
          <Suspense fallback={<p class="muted">Loading the graphs…</p>}>
            <VmPerformance vm={vm} />
          </Suspense>
        ) : null}
        {tab === 'snapshots' ? <VmSnapshots vm={vm} /> : null}
        {tab === 'backups' ? <VmBackups vm={vm} /> : null}
        {tab === 'hardware' ? <VmHardware vm={vm} /> : null}
        {tab === 'config' ? <VmConfig vm={vm} /> : null}
      </section>
    </div>
  );
}
