// The resource tree on the left, like XenCenter's: the host, its VMs with
// their state (and, in a pool, the host each runs on), the hosts of the pool,
// storage pools, networks and backup repositories, filtered by a search box.
// It follows the store, so it changes live with the events.
import { useState } from 'preact/hooks';
import { stateLabel } from '../lib/format';
import { hostIconState, isPool } from '../lib/pool';
import { hostsHref, type Route, vmHref } from '../lib/router';
import { useStore } from '../lib/store';
import { store } from '../state';
import { StateIcon } from './ui';

function Group(props: { title: string; href?: string; count: number; children: preact.ComponentChildren }) {
  const [open, setOpen] = useState(true);
  return (
    <li class="tree-group">
      <div class="tree-group-head">
        <button
          type="button"
          class="twisty"
          aria-expanded={open}
          aria-label={`${open ? 'Collapse' : 'Expand'} ${props.title}`}
          onClick={() => setOpen(!open)}
        >
          {open ? '▾' : '▸'}
        </button>
        {props.href ? <a href={props.href}>{props.title}</a> : <span>{props.title}</span>}
        <span class="count">{props.count}</span>
      </div>
      {open ? <ul role="group">{props.children}</ul> : null}
    </li>
  );
}

/** A group's items that all open the same page. */
function Items({ names, href, icon }: { names: string[]; href: string; icon: string }) {
  return (
    <>
      {names.map((name) => (
        <li key={name}>
          <a href={href} class="tree-item">
            <span aria-hidden="true">{icon}</span> {name}
          </a>
        </li>
      ))}
    </>
  );
}

export function Tree({ route }: { route: Route }) {
  const { vms, pools, networks, repos, host, hosts } = useStore(store, (s) => s);
  const [q, setQ] = useState('');
  const needle = q.trim().toLowerCase();
  const match = (name: string) => !needle || name.toLowerCase().includes(needle);
  const pooled = isPool(hosts);
  // "template" finds the templates; in a pool, a host's name finds the VMs it runs.
  const shownVms = vms.filter((v) => match(v.name) || match(v.state) || (v.template && match('template')) || (pooled && !!v.host && match(v.host)));
  const hostname = host?.hostname ?? 'host';

  return (
    <nav class="tree" aria-label="Resources" data-testid="tree">
      <input
        type="search"
        class="tree-search"
        placeholder="Search"
        aria-label="Search resources"
        value={q}
        onInput={(e) => setQ(e.currentTarget.value)}
      />
      <ul class="tree-root">
        <li>
          <a href="#/host" class={route.page === 'host' ? 'tree-item current' : 'tree-item'} aria-current={route.page === 'host' ? 'page' : undefined}>
            <span class="host-icon" aria-hidden="true">
              ▣
            </span>
            {hostname}
          </a>
        </li>
        <Group title="Virtual machines" href="#/" count={shownVms.length}>
          {shownVms.map((vm) => {
            const current = route.page === 'vm' && route.vm === vm.name;
            return (
              <li key={vm.name}>
                <a
                  href={vmHref(vm.name)}
                  class={current ? 'tree-item current' : 'tree-item'}
                  aria-current={current ? 'page' : undefined}
                  data-testid={`tree-vm-${vm.name}`}
                  data-state={vm.state}
                  title={`${vm.name}: ${stateLabel(vm.state)}${vm.template ? ', a template' : ''}${vm.busy ? ` (${vm.busy})` : ''}${pooled && vm.host ? ` on ${vm.host}` : ''}`}
                >
                  <StateIcon state={vm.state} busy={vm.busy} />
                  <span class="tree-name">{vm.name}</span>
                  <span class="sr-only"> {stateLabel(vm.state)}</span>
                  {vm.template ? <span class="badge tree-tag">template</span> : null}
                  {pooled && vm.host ? (
                    <span class="tree-host">
                      <span class="sr-only"> on </span>
                      {vm.host}
                    </span>
                  ) : null}
                </a>
              </li>
            );
          })}
          {shownVms.length === 0 ? <li class="tree-empty">{needle ? 'no match' : 'no VMs yet'}</li> : null}
        </Group>
        <Group title="Hosts" href={hostsHref()} count={hosts.length}>
          {hosts.filter((h) => match(h.name) || match(h.state)).map((h) => {
            const current = route.page === 'hosts' && route.host === h.name;
            return (
              <li key={h.name}>
                <a
                  href={hostsHref(h.name)}
                  class={current ? 'tree-item current' : 'tree-item'}
                  aria-current={current ? 'page' : undefined}
                  data-testid={`tree-host-${h.name}`}
                  data-state={h.state}
                  title={`${h.name}: ${stateLabel(h.state)}`}
                >
                  <StateIcon state={hostIconState(h.state)} />
                  <span class="tree-name">{h.name}</span>
                  <span class="sr-only"> {stateLabel(h.state)}</span>
                </a>
              </li>
            );
          })}
        </Group>
        <Group title="Storage pools" href="#/storage" count={pools.length}>
          {pools.filter((p) => match(p.name)).map((p) => (
            <li key={p.name}>
              <a href={`#/storage/${encodeURIComponent(p.name)}`} class={route.page === 'storage' && route.pool === p.name ? 'tree-item current' : 'tree-item'}>
                <span aria-hidden="true">⛁</span> {p.name}
              </a>
            </li>
          ))}
        </Group>
        <Group title="Networks" href="#/networks" count={networks.length}>
          <Items names={networks.map((n) => n.name).filter(match)} href="#/networks" icon="⇄" />
        </Group>
        <Group title="Repositories" href="#/repos" count={repos.length}>
          <Items names={repos.map((r) => r.name).filter(match)} href="#/repos" icon="⛃" />
        </Group>
      </ul>
    </nav>
  );
}
