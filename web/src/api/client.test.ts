import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError, errorFromResponse, wsUrl } from './client';
import { failure, json, mockFetch } from './fakeFetch';

function client(responses: (Response | Error)[], token: string | null = 'secret', onUnauthorized?: () => void) {
  const m = mockFetch(responses);
  return { c: new ApiClient({ fetch: m.f, getToken: () => token, onUnauthorized }), calls: m.calls };
}

describe('ApiClient', () => {
  it('sends the bearer token in the Authorization header, never in the URL', async () => {
    const { c, calls } = client([json(200, [{ name: 'web' }])]);
    const vms = await c.get<{ name: string }[]>('/api/v1/vms');
    expect(vms[0].name).toBe('web');
    const headers = calls[0].init.headers as Record<string, string>;
    expect(headers.Authorization).toBe('Bearer secret');
    expect(calls[0].url).toBe('/api/v1/vms');
    expect(calls[0].url).not.toContain('secret');
    expect(calls[0].init.method).toBe('GET');
  });

  it('sends no Authorization header without a token', async () => {
    const { c, calls } = client([json(200, {})], null);
    await c.get('/api/v1/host');
    expect((calls[0].init.headers as Record<string, string>).Authorization).toBeUndefined();
  });

  it('sends JSON bodies with their content type', async () => {
    const { c, calls } = client([json(202, { task: 't1' })]);
    const r = await c.post<{ task: string }>('/api/v1/vms/web/backup', { repo: 'nas' });
    expect(r.task).toBe('t1');
    expect(calls[0].init.method).toBe('POST');
    expect(calls[0].init.body).toBe('{"repo":"nas"}');
    expect((calls[0].init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
  });

  it("maps an error answer to ApiError with pampad's message and code", async () => {
    const { c } = client([json(409, { error: "vm 'web' is running; stop it first", code: 'conflict' })]);
    const err = await failure(c.patch('/api/v1/vms/web', { cpus: 2 }));
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(409);
    expect(err.code).toBe('conflict');
    expect(err.message).toBe("vm 'web' is running; stop it first");
  });

  it('says what status came back when the body is not JSON', async () => {
    const { c } = client([new Response('<html><body>Bad Gateway</body></html>', { status: 502, statusText: 'Bad Gateway' })]);
    const err = await failure(c.get('/api/v1/vms'));
    expect(err.status).toBe(502);
    expect(err.code).toBe('internal');
    expect(err.message).toMatch(/502/);
  });

  it('keeps a short plain-text error body', async () => {
    const err = await errorFromResponse(new Response('disk full', { status: 500 }));
    expect(err.message).toBe('disk full');
  });

  it('maps 401 to "wrong token" and tells the app once', async () => {
    const onUnauthorized = vi.fn();
    const { c } = client([json(401, { error: 'missing or wrong API token', code: 'unauthorized' })], 'bad', onUnauthorized);
    const err = await failure(c.get('/api/v1/vms'));
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(401);
    expect(err.code).toBe('unauthorized');
    expect(err.message).toMatch(/^wrong token/);
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it('does not sign out on other errors', async () => {
    const onUnauthorized = vi.fn();
    const { c } = client([json(404, { error: "vm 'x' does not exist", code: 'not-found' })], 't', onUnauthorized);
    await c.get('/api/v1/vms/x').catch(() => {});
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it('reports an unreachable pampad as status 0', async () => {
    const { c } = client([new TypeError('Failed to fetch')]);
    const err = await failure(c.get('/api/v1/vms'));
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(0);
    expect(err.code).toBe('unreachable');
    expect(err.message).toMatch(/cannot reach pampad/);
  });

  it('asks for a ticket with the kind and VM, over an authenticated POST', async () => {
    const { c, calls } = client([json(200, { ticket: 'abc123', expires_in: 30 })]);
    const t = await c.ticket('vnc', 'web');
    expect(t).toBe('abc123');
    expect(calls[0].url).toBe('/api/v1/tickets');
    expect(calls[0].init.method).toBe('POST');
    expect(JSON.parse(String(calls[0].init.body))).toEqual({ kind: 'vnc', vm: 'web' });
    expect((calls[0].init.headers as Record<string, string>).Authorization).toBe('Bearer secret');
  });

  it('sends no vm for the events ticket', async () => {
    const { c, calls } = client([json(200, { ticket: 'e1' })]);
    await c.ticket('events');
    expect(JSON.parse(String(calls[0].init.body))).toEqual({ kind: 'events' });
  });

  it('refuses an answer without a ticket', async () => {
    const { c } = client([json(200, {})]);
    await expect(c.ticket('events')).rejects.toBeInstanceOf(ApiError);
  });

  it('opens the WebSocket with the ticket, not the token', async () => {
    const opened: { url: string; protocols?: string | string[] }[] = [];
    class FakeSocket {
      constructor(url: string, protocols?: string | string[]) {
        opened.push({ url, protocols });
      }
    }
    vi.stubGlobal('WebSocket', FakeSocket);
    vi.stubGlobal('location', { protocol: 'https:', host: 'pampa.example:8006' });
    try {
      const { c } = client([json(200, { ticket: 'tk' })]);
      await c.openSocket('/api/v1/vms/web/vnc', 'vnc', 'web', ['binary']);
      expect(opened[0].url).toBe('wss://pampa.example:8006/api/v1/vms/web/vnc?ticket=tk');
      expect(opened[0].url).not.toContain('secret');
      expect(opened[0].protocols).toEqual(['binary']);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('follows a task until it ends', async () => {
    const { c } = client([
      json(200, { id: 't', state: 'running', progress: 0.5 }),
      json(200, { id: 't', state: 'succeeded', progress: 1, result: { ok: true } }),
    ]);
    const seen: number[] = [];
    const t = await c.waitTask('t', (x) => seen.push(x.progress ?? 0), 1);
    expect(t.state).toBe('succeeded');
    expect(seen).toEqual([0.5, 1]);
  });
});

describe('wsUrl', () => {
  it('uses ws: for http pages and escapes the ticket', () => {
    expect(wsUrl('/api/v1/events', 'a b', { protocol: 'http:', host: '127.0.0.1:8006' })).toBe(
      'ws://127.0.0.1:8006/api/v1/events?ticket=a%20b',
    );
  });
});

/** Just enough of XMLHttpRequest for ApiClient.upload, driven by the test. */
class FakeXhr {
  static last: FakeXhr;
  method = '';
  url = '';
  headers: Record<string, string> = {};
  body: unknown;
  status = 0;
  statusText = '';
  responseText = '';
  aborted = false;
  upload: { onprogress: ((e: { loaded: number; total: number; lengthComputable: boolean }) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  constructor() {
    FakeXhr.last = this;
  }
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v;
  }
  send(body: unknown) {
    this.body = body;
  }
  abort() {
    this.aborted = true;
    this.onabort?.();
  }
  progress(loaded: number, total: number) {
    this.upload.onprogress?.({ loaded, total, lengthComputable: true });
  }
  answer(status: number, text: string) {
    this.status = status;
    this.responseText = text;
    this.onload?.();
  }
}

function uploader(token: string | null = 'secret', onUnauthorized?: () => void) {
  return new ApiClient({ getToken: () => token, onUnauthorized, xhr: () => new FakeXhr() as unknown as XMLHttpRequest });
}

describe('ApiClient.upload', () => {
  const file = new Blob([new Uint8Array(1000)]);

  it('PUTs the file as octet-stream with the bearer token, reports progress and returns the task', async () => {
    const seen: [number, number][] = [];
    const p = uploader().upload<{ task: string }>('/api/v1/pools/default/upload/disk?format=qcow2', file, {
      onProgress: (sent, total) => seen.push([sent, total]),
    });
    const x = FakeXhr.last;
    expect(x.method).toBe('PUT');
    expect(x.url).toBe('/api/v1/pools/default/upload/disk?format=qcow2');
    expect(x.url).not.toContain('secret');
    expect(x.headers.Authorization).toBe('Bearer secret');
    expect(x.headers['Content-Type']).toBe('application/octet-stream');
    expect(x.body).toBe(file);
    x.progress(400, 1000);
    x.progress(1000, 1000);
    x.answer(202, '{"task":"t7"}');
    expect(await p).toEqual({ task: 't7' });
    expect(seen).toEqual([
      [400, 1000],
      [1000, 1000],
    ]);
  });

  it("turns pampad's JSON error into an ApiError with its message", async () => {
    const p = uploader().upload('/api/v1/pools/default/upload/disk', file);
    FakeXhr.last.answer(409, '{"error":"volume \'disk\' already exists in pool \'default\'"}');
    const e = await failure(p);
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(409);
    expect(e.code).toBe('conflict');
    expect(e.message).toBe("volume 'disk' already exists in pool 'default'");
  });

  it('names the status when the body says nothing (413, 507)', async () => {
    const p = uploader().upload('/u', file);
    FakeXhr.last.answer(413, '');
    expect((await failure(p)).message).toBe('pampad answered 413 (request too large)');
    const q = uploader().upload('/u', file);
    FakeXhr.last.answer(507, '');
    expect((await failure(q)).message).toBe('pampad answered 507 (not enough space)');
  });

  it('calls onUnauthorized on a 401', async () => {
    const out = vi.fn();
    const p = uploader('old', out).upload('/u', file);
    FakeXhr.last.answer(401, '{"error":"bad token"}');
    expect((await failure(p)).code).toBe('unauthorized');
    expect(out).toHaveBeenCalledOnce();
  });

  it('aborts the request when the signal fires, as a cancelled ApiError', async () => {
    const ctl = new AbortController();
    const p = uploader().upload('/u', file, { signal: ctl.signal });
    FakeXhr.last.progress(10, 1000);
    ctl.abort();
    expect(FakeXhr.last.aborted).toBe(true);
    const e = await failure(p);
    expect(e.code).toBe('cancelled');
    expect(e.message).toMatch(/cancelled/);
  });

  it('does not start when already aborted', async () => {
    const ctl = new AbortController();
    ctl.abort();
    const before = FakeXhr.last;
    const e = await failure(uploader().upload('/u', file, { signal: ctl.signal }));
    expect(e.code).toBe('cancelled');
    expect(FakeXhr.last).toBe(before);
  });

  it('reports a connection cut off as unreachable', async () => {
    const p = uploader().upload('/u', file);
    FakeXhr.last.onerror?.();
    const e = await failure(p);
    expect(e.status).toBe(0);
    expect(e.code).toBe('unreachable');
  });
});
