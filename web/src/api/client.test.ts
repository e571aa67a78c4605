import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError, errorFromResponse, wsUrl } from './client';

type Call = { url: string; init: RequestInit };

function mockFetch(responses: (Response | Error)[]) {
  const calls: Call[] = [];
  const f = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    const next = responses.shift();
    if (!next) throw new Error('no more responses');
    if (next instanceof Error) throw next;
    return next;
  });
  return { f: f as unknown as typeof fetch, calls };
}

/** The ApiError a call fails with (the test fails if it succeeds). */
const failure = (p: Promise<unknown>): Promise<ApiError> =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: ApiError) => e,
  );

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

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
