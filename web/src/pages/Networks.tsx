// The Networks page: NAT and bridged networks; create and delete.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import { useStore } from '../lib/store';
import { refreshNetworks, store } from '../state';
import { ErrorBox, Field, useAction } from '../components/ui';

export function NetworksPage() {
  const { networks, vms } = useStore(store, (s) => ({ networks: s.networks, vms: s.vms }));
  const [f, setF] = useState({ name: '', mode: 'nat', subnet: '10.90.0.0/24', bridge: '' });
  const { busy, error, run } = useAction();
  useEffect(() => {
    void refreshNetworks().catch(() => {});
  }, []);
  const users = (net: string) => vms.filter((v) => v.nics?.some((n) => n.network === net)).map((v) => v.name);

  return (
    <div class="page">
      <h1>Networks</h1>
      <div class="table-wrap">
        <table class="table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Mode</th>
              <th>Bridge</th>
              <th>Subnet</th>
              <th>Gateway</th>
              <th>DHCP range</th>
              <th>Active</th>
              <th>VMs</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {networks.map((n) => {
              const u = users(n.name);
              return (
                <tr key={n.name}>
                  <td>{n.name}</td>
                  <td>{n.mode}</td>
                  <td class="mono">{n.bridge}</td>
                  <td class="mono">{n.subnet || '—'}</td>
                  <td class="mono">{n.gateway || '—'}</td>
                  <td class="mono">{n.dhcp_start ? `${n.dhcp_start} – ${n.dhcp_end}` : '—'}</td>
                  <td>{n.active ? 'yes' : 'no'}</td>
                  <td>{u.length ? u.join(', ') : <span class="muted">none</span>}</td>
                  <td>
                    <button
                      type="button"
                      class="small danger-outline"
                      disabled={busy}
                      aria-label={`Delete network ${n.name}`}
                      onClick={() =>
                        run(async () => {
                          if (!window.confirm(`Delete network ${n.name}?`)) return;
                          await api.del(`/api/v1/networks/${encodeURIComponent(n.name)}`);
                          await refreshNetworks();
                        })
                      }
                    >
                      Delete
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <h2>New network</h2>
      <form
        class="form inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          const body: Record<string, string> = { name: f.name.trim(), mode: f.mode };
          if (f.mode === 'nat') body.subnet = f.subnet.trim();
          else body.bridge = f.bridge.trim();
          run(async () => {
            await api.post('/api/v1/networks', body);
            setF({ ...f, name: '' });
            await refreshNetworks();
          });
        }}
      >
        <Field label="Name">
          <input name="name" required value={f.name} onInput={(e) => setF({ ...f, name: e.currentTarget.value })} />
        </Field>
        <Field label="Mode">
          <select name="mode" value={f.mode} onChange={(e) => setF({ ...f, mode: e.currentTarget.value })}>
            <option value="nat">NAT (own subnet, DHCP)</option>
            <option value="bridge">Bridged (an existing bridge)</option>
          </select>
        </Field>
        {f.mode === 'nat' ? (
          <Field label="Subnet">
            <input name="subnet" required value={f.subnet} onInput={(e) => setF({ ...f, subnet: e.currentTarget.value })} />
          </Field>
        ) : (
          <Field label="Bridge">
            <input name="bridge" required placeholder="br0" value={f.bridge} onInput={(e) => setF({ ...f, bridge: e.currentTarget.value })} />
          </Field>
        )}
        <button type="submit" class="primary" disabled={busy}>
          Create network
        </button>
      </form>
      <ErrorBox message={error} />
    </div>
  );
}
