// The sign-in screen. Today it takes the API token (DATA_DIR/token on the
// host); user accounts can replace this component later. The token is kept
// in sessionStorage only and checked against pampad before it is kept.
import { useState } from 'preact/hooks';
import { ApiClient, messageOf } from '../api/client';
import type { HostInfo } from '../api/types';

export function SignIn(props: { reason?: string; onSignedIn: (token: string, host: HostInfo) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(props.reason ?? '');
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) {
      setError('enter the API token (it is in DATA_DIR/token on the host, e.g. /var/lib/pampa/token)');
      return;
    }
    setBusy(true);
    setError('');
    try {
      // A client of its own: a wrong token must not sign anyone out.
      const probe = new ApiClient({ getToken: () => t });
      const host = await probe.get<HostInfo>('/api/v1/host');
      props.onSignedIn(t, host);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <form class="signin-card" onSubmit={submit}>
        <h1>
          <span class="logo" aria-hidden="true">
            P
          </span>{' '}
          Pampa
        </h1>
        <p class="muted">The web console of this host's virtual machines.</p>
        {/* Lets password managers file the token under one name. */}
        <input type="text" name="username" autocomplete="username" value="pampa-api" hidden readOnly />
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="current-password"
          spellcheck={false}
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          autofocus
        />
        <p class="hint">
          The token is in <code>DATA_DIR/token</code> on the host (<code>/var/lib/pampa/token</code> by default). It is
          kept for this browser tab only.
        </p>
        {error ? (
          <div class="error" role="alert">
            {error}
          </div>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
