// The REST client: every call carries `Authorization: Bearer TOKEN`; errors
// become ApiError with pampad's own message (written for the user). The
// bearer token never goes into a URL: WebSockets get a single-use ticket.
import type { Task, TicketKind } from './types';

export class ApiError extends Error {
  /** HTTP status; 0 when pampad could not be reached at all. */
  readonly status: number;
  /** pampad's error code (invalid, not-found, conflict, busy, unauthorized, ...). */
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export interface ClientOptions {
  /** Prefix of every path, '' for the same origin. */
  base?: string;
  fetch?: typeof fetch;
  /** Makes the XMLHttpRequest of an upload (fetch reports no upload progress). */
  xhr?: () => XMLHttpRequest;
  getToken: () => string | null;
  /** Called once per 401, before the ApiError is thrown. */
  onUnauthorized?: () => void;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'the request was refused',
  401: 'wrong token',
  404: 'not found',
  409: 'conflict',
  411: 'length required',
  413: 'request too large',
  499: 'cancelled',
  500: 'pampad failed',
  502: 'bad gateway',
  503: 'unavailable',
  504: 'gateway timeout',
  507: 'not enough space',
};

/** Turns a failed response into an ApiError carrying the server's message. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    /* the body is lost: the status must do */
  }
  return errorFromBody(res.status, res.statusText, text);
}

/** The ApiError for a failed answer: its status and body text. */
export function errorFromBody(status: number, statusText: string, text: string): ApiError {
  let message = '';
  let code = '';
  try {
    const body = JSON.parse(text);
    if (body && typeof body === 'object') {
      if (typeof body.error === 'string') message = body.error;
      if (typeof body.code === 'string') code = body.code;
    }
  } catch {
    // Not JSON (a proxy's HTML page, say): a short plain text is still useful.
    if (text && text.length < 300 && !/<html/i.test(text)) message = text.trim();
  }
  if (status === 401) {
    code = code || 'unauthorized';
    message = 'wrong token' + (message ? ': ' + message : '');
  }
  if (!message) {
    const what = STATUS_TEXT[status] ?? statusText ?? 'error';
    message = `pampad answered ${status} (${what})`;
  }
  return new ApiError(status, code || codeForStatus(status), message);
}

function codeForStatus(status: number): string {
  if (status === 400) return 'invalid';
  if (status === 404) return 'not-found';
  if (status === 409) return 'conflict';
  if (status === 499) return 'cancelled';
  if (status === 503) return 'unavailable';
  return status >= 500 ? 'internal' : 'error';
}

export class ApiClient {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  private readonly xhrFn: () => XMLHttpRequest;
  private readonly getToken: () => string | null;
  private readonly onUnauthorized?: () => void;

  constructor(opts: ClientOptions) {
    this.base = opts.base ?? '';
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
    this.xhrFn = opts.xhr ?? (() => new XMLHttpRequest());
    this.getToken = opts.getToken;
    this.onUnauthorized = opts.onUnauthorized;
  }

  private headers(accept: string): Record<string, string> {
    const headers: Record<string, string> = { Accept: accept };
    const token = this.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    return headers;
  }

  private async send(method: string, path: string, body?: unknown, accept = 'application/json'): Promise<Response> {
    const headers = this.headers(accept);
    let payload: string | undefined;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await this.fetchFn(this.base + path, { method, headers, body: payload });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new ApiError(0, 'unreachable', `cannot reach pampad (${why}); is it running?`);
    }
    if (!res.ok) throw this.failed(res.status, await errorFromResponse(res));
    return res;
  }

  /** The error of a failed answer, after telling the app about a 401. */
  private failed(status: number, err: ApiError): ApiError {
    if (status === 401) this.onUnauthorized?.();
    return err;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    return parseJson<T>(res.status, await res.text(), path);
  }

  /**
   * PUTs a file as the raw request body (application/octet-stream; the
   * browser sets Content-Length) with XMLHttpRequest, for its upload
   * progress: onProgress sees the bytes sent and the total. Aborting the
   * signal aborts the request (an ApiError with code 'cancelled').
   */
  upload<T>(path: string, file: Blob, opts: { onProgress?: (sent: number, total: number) => void; signal?: AbortSignal } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const cancelled = () => new ApiError(499, 'cancelled', 'the upload was cancelled');
      if (opts.signal?.aborted) return reject(cancelled());
      const xhr = this.xhrFn();
      xhr.open('PUT', this.base + path);
      for (const [k, v] of Object.entries(this.headers('application/json'))) xhr.setRequestHeader(k, v);
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      const onAbort = () => xhr.abort();
      opts.signal?.addEventListener('abort', onAbort);
      const settle = (f: () => void) => {
        opts.signal?.removeEventListener('abort', onAbort);
        f();
      };
      xhr.upload.onprogress = (e) => opts.onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size);
      xhr.onload = () =>
        settle(() => {
          if (xhr.status >= 200 && xhr.status < 300) {
            try {
              resolve(parseJson<T>(xhr.status, xhr.responseText, path));
            } catch (e) {
              reject(e);
            }
          } else {
            reject(this.failed(xhr.status, errorFromBody(xhr.status, xhr.statusText, xhr.responseText)));
          }
        });
      // pampad closes the connection after refusing a large body it did not read.
      xhr.onerror = () =>
        settle(() => reject(new ApiError(0, 'unreachable', 'the upload was cut off: pampad closed the connection, or cannot be reached')));
      xhr.onabort = () => settle(() => reject(cancelled()));
      xhr.send(file);
    });
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', path, body);
  }
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body);
  }
  del<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  /** A plain-text resource (the serial console's log). */
  async text(path: string): Promise<string> {
    const res = await this.send('GET', path, undefined, 'text/plain');
    return res.text();
  }

  /** A single-use ticket that opens one WebSocket. */
  async ticket(kind: TicketKind, vm?: string): Promise<string> {
    const body: Record<string, string> = { kind };
    if (vm) body.vm = vm;
    const res = await this.post<{ ticket?: string }>('/api/v1/tickets', body);
    if (!res || typeof res.ticket !== 'string' || !res.ticket) {
      throw new ApiError(500, 'internal', 'pampad issued no WebSocket ticket');
    }
    return res.ticket;
  }

  /** Opens a WebSocket at path with a fresh ticket (never the token). */
  async openSocket(
    path: string,
    kind: TicketKind,
    vm?: string,
    protocols?: string | string[],
  ): Promise<WebSocket> {
    const t = await this.ticket(kind, vm);
    return new WebSocket(wsUrl(path, t, location, this.base), protocols);
  }

  /** Polls a task until it ends; onUpdate sees every state. */
  async waitTask(id: string, onUpdate?: (t: Task) => void, intervalMs = 700): Promise<Task> {
    for (;;) {
      const t = await this.get<Task>(`/api/v1/tasks/${encodeURIComponent(id)}`);
      onUpdate?.(t);
      if (t.state !== 'running') return t;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

/** An answer's JSON body (undefined when empty). */
function parseJson<T>(status: number, text: string, path: string): T {
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(status, 'internal', `pampad answered ${path} with something that is not JSON`);
  }
}

/** ws(s)://HOST/PATH?ticket=T for the page at loc. */
export function wsUrl(path: string, ticket: string, loc: { protocol: string; host: string }, base = ''): string {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const sep = path.includes('?') ? '&' : '?';
  if (/^https?:\/\//.test(base)) {
    return base.replace(/^http/, 'ws') + path + sep + 'ticket=' + encodeURIComponent(ticket);
  }
  return `${scheme}//${loc.host}${base}${path}${sep}ticket=${encodeURIComponent(ticket)}`;
}

/** The path of a VM resource, its name escaped. */
export function vmPath(name: string, rest = ''): string {
  return `/api/v1/vms/${encodeURIComponent(name)}${rest}`;
}

/** A message for any thrown value. */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
