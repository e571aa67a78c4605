// The app shell: sign-in, then the XenCenter-like layout (top bar, resource
// tree, the page of the current route, the tasks panel).
import { useEffect, useState } from 'preact/hooks';
import { getToken, onSessionEnd, setToken, signOut } from './api/session';
import { SignIn } from './components/SignIn';
import { TasksPanel } from './components/TasksPanel';
import { Tree } from './components/Tree';
import { CreateVmDialog } from './pages/CreateVm';
import { HaPage } from './pages/Ha';
import { HomePage } from './pages/Home';
import { HostPage } from './pages/Host';
import { HostDetail } from './pages/HostDetail';
import { HostsPage } from './pages/Hosts';
import { NetworksPage } from './pages/Networks';
import { ReposPage } from './pages/Repos';
import { StoragePage } from './pages/Storage';
import { VmPage } from './pages/VmPage';
import { type Route, useRoute } from './lib/router';
import { useStore } from './lib/store';
import { currentTheme, setTheme, type Theme } from './lib/theme';
import { startLive, stopLive, store } from './state';

export function App() {
  const [signedIn, setSignedIn] = useState(() => !!getToken());
  const [reason, setReason] = useState('');

  useEffect(() => {
    onSessionEnd((why) => {
      stopLive();
      setReason(why);
      setSignedIn(false);
    });
  }, []);

  if (!signedIn) {
    return (
      <SignIn
        reason={reason}
        onSignedIn={(token, host) => {
          setToken(token);
          store.set({ host });
          setReason('');
          setSignedIn(true);
        }}
      />
    );
  }
  return <Console />;
}

function ThemeToggle() {
  const [theme, setT] = useState<Theme>(currentTheme);
  const next: Theme = theme === 'dark' ? 'light' : 'dark';
  return (
    <button
      type="button"
      class="icon"
      aria-label={`Switch to the ${next} theme`}
      title={`Switch to the ${next} theme`}
      onClick={() => {
        setTheme(next);
        setT(next);
      }}
    >
      {theme === 'dark' ? '☀' : '☾'}
    </button>
  );
}

function TopBar() {
  const host = useStore(store, (s) => s.host);
  const events = useStore(store, (s) => s.events);
  const why = useStore(store, (s) => s.eventsWhy);
  const [creating, setCreating] = useState(false);
  return (
    <header class="topbar">
      <a href="#/" class="brand">
        <span class="logo" aria-hidden="true">
          P
        </span>
        Pampa
      </a>
      <span class="host-name" title={host?.version ? `pampad ${host.version}` : undefined}>
        {host?.hostname ?? '…'}
        {host?.accel ? <span class="muted"> · {host.accel}</span> : null}
      </span>
      <span
        class={`live live-${events}`}
        title={events === 'live' ? 'live updates on' : `live updates off (${why || 'connecting'}); refreshing every 3 s`}
      >
        {events === 'live' ? '● live' : events === 'connecting' ? '○ connecting' : '○ polling'}
      </span>
      <nav class="top-nav" aria-label="Pages">
        <a href="#/storage">Storage</a>
        <a href="#/networks">Networks</a>
        <a href="#/repos">Repositories</a>
        <a href="#/host">Host</a>
      </nav>
      <span class="spacer" />
      <button type="button" class="primary" onClick={() => setCreating(true)}>
        Create VM
      </button>
      <ThemeToggle />
      <button type="button" onClick={() => signOut('')}>
        Sign out
      </button>
      {creating ? <CreateVmDialog onClose={() => setCreating(false)} /> : null}
    </header>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'vm':
      return <VmPage key={route.vm} name={route.vm!} tab={route.tab ?? 'summary'} />;
    case 'storage':
      return <StoragePage pool={route.pool} />;
    case 'networks':
      return <NetworksPage />;
    case 'repos':
      return <ReposPage />;
    case 'host':
      return <HostPage />;
    case 'hosts':
      return route.host ? <HostDetail key={route.host} name={route.host} /> : <HostsPage />;
    case 'ha':
      return <HaPage />;
    case 'home':
      return <HomePage />;
    default:
      return (
        <div class="page">
          <h1>Not found</h1>
          <p>
            Nothing lives at this address. <a href="#/">Back to the virtual machines</a>.
          </p>
        </div>
      );
  }
}

function Console() {
  const route = useRoute();
  useEffect(() => {
    startLive();
    return stopLive;
  }, []);
  return (
    <div class="layout">
      <TopBar />
      <Tree route={route} />
      <main class="main" id="main">
        <Page route={route} />
      </main>
      <TasksPanel />
    </div>
  );
}
