// The Networks page: NAT and bridged networks; create and delete.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import { useStore } from '../lib/store';
import { refreshNetworks, store } from '../state';
import { DataTable, DeleteButton, ErrorBox, Field, TextField, useAction } from '../components/ui';

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
      <DataTable columns={['Name', 'Mode', 'Bridge', 'Subnet', 'Gateway', 'DHCP range', 'Active', 'VMs', '']}>
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
                <DeleteButton
                  label={`Delete network ${n.name}`}
                  question={`Delete network ${n.name}?`}
                  busy={busy}
                  run={run}
                  remove={async () => {
                    await api.del(`/api/v1/networks/${encodeURIComponent(n.name)}`);
                    await refreshNetworks();
                  }}
                />
              </td>
            </tr>
          );
        })}
      </DataTable>
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
        <TextField label="Name" name="name" required value={f.name} onValue={(v) => setF({ ...f, name: v })} />
        <Field label="Mode">
          <select name="mode" value={f.mode} onChange={(e) => setF({ ...f, mode: e.currentTarget.value })}>
            <option value="nat">NAT (own subnet, DHCP)</option>
            <option value="bridge">Bridged (an existing bridge)</option>
          </select>
        </Field>
        {f.mode === 'nat' ? (
          <TextField label="Subnet" name="subnet" required value={f.subnet} onValue={(v) => setF({ ...f, subnet: v })} />
        ) : (
          <TextField label="Bridge" name="bridge" required placeholder="br0" value={f.bridge} onValue={(v) => setF({ ...f, bridge: v })} />
        )}
        <button type="submit" class="primary" disabled={busy}>
          Create network
        </button>
      </form>
      <ErrorBox message={error} />
    </div>
  );
}
