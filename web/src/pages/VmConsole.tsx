// The Console tab: the graphical console (noVNC over the vnc WebSocket),
// the serial console (xterm.js over the console WebSocket, prefilled with
// the scrollback), typing text as keystrokes, Ctrl-Alt-Del and full screen.
// This module, noVNC and xterm.js are loaded only when the tab opens.
import { useEffect, useRef, useState } from 'preact/hooks';
import RFB from '@novnc/novnc/lib/rfb';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { api } from '../api/session';
import { messageOf, vmPath, wsUrl } from '../api/client';
import type { Vm } from '../api/types';
import { currentTheme } from '../lib/theme';
import { ErrorBox, useAction } from '../components/ui';

type Conn = 'connecting' | 'connected' | 'closed';

/** A console's connection: its state, why it closed, and reconnecting. */
function useConnection(vm: Vm) {
  const [status, setStatus] = useState<Conn>('connecting');
  const [why, setWhy] = useState('');
  const [attempt, setAttempt] = useState(0);
  const runs = vm.state === 'running' || vm.state === 'paused' || vm.state === 'shutting-down';
  return {
    status,
    why,
    attempt,
    runs,
    connecting: () => {
      setStatus('connecting');
      setWhy('');
    },
    connected: () => setStatus('connected'),
    closed: (reason: string) => {
      setStatus('closed');
      setWhy(reason);
    },
    setWhy,
    reconnect: () => setAttempt(attempt + 1),
  };
}

/** Reconnect, once a running VM's console has closed. */
function Reconnect({ conn }: { conn: ReturnType<typeof useConnection> }) {
  return conn.runs && conn.status === 'closed' ? (
    <button type="button" onClick={conn.reconnect}>
      Reconnect
    </button>
  ) : null;
}

function VncView({ vm }: { vm: Vm }) {
  const box = useRef<HTMLDivElement>(null);
  const screen = useRef<HTMLDivElement>(null);
  const conn = useConnection(vm);
  const { status, why, attempt, runs } = conn;

  useEffect(() => {
    if (!runs || !screen.current) return;
    let rfb: RFB | null = null;
    let cancelled = false;
    conn.connecting();
    api
      .ticket('vnc', vm.name)
      .then((t) => {
        if (cancelled || !screen.current) return;
        rfb = new RFB(screen.current, wsUrl(vmPath(vm.name, '/vnc'), t, location), { wsProtocols: ['binary'] });
        rfb.scaleViewport = true;
        rfb.background = 'transparent';
        rfb.addEventListener('connect', conn.connected);
        rfb.addEventListener('disconnect', (e: Event) => {
          const clean = (e as CustomEvent<{ clean: boolean }>).detail?.clean;
          conn.closed(clean ? 'the console closed' : 'the connection to the console was lost');
        });
        rfb.addEventListener('securityfailure', (e: Event) => {
          conn.setWhy(`VNC security failure: ${(e as CustomEvent<{ reason?: string }>).detail?.reason ?? ''}`);
        });
      })
      .catch((e) => {
        if (!cancelled) conn.closed(messageOf(e));
      });
    return () => {
      cancelled = true;
      try {
        rfb?.disconnect();
      } catch {
        /* already gone */
      }
    };
  }, [vm.name, runs, attempt]);

  const fullscreen = () => {
    const el = box.current;
    if (!el) return;
    if (document.fullscreenElement) void document.exitFullscreen();
    else void el.requestFullscreen?.();
  };

  return (
    <section class="console-pane">
      <header class="pane-head">
        <h2>Graphical console</h2>
        <span class={`conn conn-${runs ? status : 'closed'}`}>{runs ? status : 'VM not running'}</span>
        <span class="spacer" />
        <Reconnect conn={conn} />
        <button type="button" onClick={fullscreen} disabled={!runs}>
          Full screen
        </button>
      </header>
      <div class="vnc" ref={box} data-testid="vnc">
        <div class="vnc-screen" ref={screen} />
        {!runs ? <p class="vnc-off">The VM is {vm.state}: start it to see its screen.</p> : null}
      </div>
      {runs && why ? <p class="muted">{why}</p> : null}
    </section>
  );
}

const DARK = { background: '#0f1216', foreground: '#d8dee9', cursor: '#d8dee9' };
const LIGHT = { background: '#fbfbfc', foreground: '#1d2330', cursor: '#1d2330', selectionBackground: '#b5cdf5' };

function SerialView({ vm }: { vm: Vm }) {
  const host = useRef<HTMLDivElement>(null);
  const conn = useConnection(vm);
  const { status, why, attempt, runs } = conn;

  useEffect(() => {
    if (!host.current) return;
    const term = new Terminal({
      convertEol: false,
      scrollback: 5000,
      fontSize: 13,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
      theme: currentTheme() === 'dark' ? DARK : LIGHT,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host.current);
    const refit = () => {
      try {
        fit.fit();
      } catch {
        /* hidden: nothing to fit */
      }
    };
    refit();
    const ro = new ResizeObserver(refit);
    ro.observe(host.current);

    let ws: WebSocket | null = null;
    let cancelled = false;
    const enc = new TextEncoder();
    const sub = term.onData((d) => {
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
    });
    conn.connecting();
    (async () => {
      // The scrollback first, then the live bytes.
      try {
        const log = await api.text(vmPath(vm.name, '/console/log'));
        if (cancelled) return;
        if (log) term.write(log.replace(/\r?\n/g, '\r\n'));
      } catch (e) {
        if (!cancelled) term.write(`\x1b[2m(no scrollback: ${messageOf(e)})\x1b[0m\r\n`);
      }
      if (!runs) {
        conn.closed(`the VM is ${vm.state}: this is what it wrote last time`);
        return;
      }
      try {
        const sock = await api.openSocket(vmPath(vm.name, '/console'), 'console', vm.name);
        if (cancelled) {
          sock.close();
          return;
        }
        ws = sock;
        sock.binaryType = 'arraybuffer';
        sock.onopen = conn.connected;
        sock.onmessage = (m) => {
          if (m.data instanceof ArrayBuffer) term.write(new Uint8Array(m.data));
          else if (typeof m.data === 'string') term.write(m.data);
        };
        sock.onclose = () => {
          if (!cancelled) conn.closed('the serial console closed');
        };
      } catch (e) {
        if (!cancelled) conn.closed(messageOf(e));
      }
    })();
    return () => {
      cancelled = true;
      sub.dispose();
      ro.disconnect();
      ws?.close();
      term.dispose();
    };
  }, [vm.name, runs, attempt]);

  return (
    <section class="console-pane">
      <header class="pane-head">
        <h2>Serial console</h2>
        <span class={`conn conn-${status}`}>{status}</span>
        <span class="spacer" />
        <Reconnect conn={conn} />
      </header>
      <div class="serial" data-testid="serial" ref={host} />
      {why ? <p class="muted">{why}</p> : null}
    </section>
  );
}

function Keyboard({ vm }: { vm: Vm }) {
  const [text, setText] = useState('');
  const [sent, setSent] = useState('');
  const { busy, error, run } = useAction();
  const send = (body: unknown, what: string) =>
    run(async () => {
      await api.post(vmPath(vm.name, '/sendkey'), body);
      setSent(what);
    });
  return (
    <form
      class="keyboard"
      data-testid="type-text"
      onSubmit={(e) => {
        e.preventDefault();
        if (text) void send({ text }, `typed ${text.length} character(s)`);
      }}
    >
      <label for="type-text">Type this text into the guest (US keyboard layout)</label>
      <textarea
        id="type-text"
        name="text"
        rows={2}
        value={text}
        placeholder="uname -a"
        spellcheck={false}
        onInput={(e) => {
          setText(e.currentTarget.value);
          setSent('');
        }}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            if (text) void send({ text }, `typed ${text.length} character(s)`);
          }
        }}
      />
      <div class="row">
        <button type="submit" class="primary" disabled={busy || !text}>
          Send
        </button>
        <button type="button" disabled={busy} onClick={() => send({ text: text + '\n' }, 'typed the text and Enter')}>
          Type and press Enter
        </button>
        <button type="button" disabled={busy} onClick={() => send({ keys: ['ctrl', 'alt', 'delete'] }, 'sent Ctrl-Alt-Del')}>
          Ctrl-Alt-Del
        </button>
        <span class="muted">{sent}</span>
      </div>
      <ErrorBox message={error} />
    </form>
  );
}

export function VmConsole({ vm }: { vm: Vm }) {
  return (
    <div class="console">
      <VncView vm={vm} />
      <Keyboard vm={vm} />
      <SerialView vm={vm} />
    </div>
  );
}
