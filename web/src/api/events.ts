// The live event stream (/api/v1/events). Each (re)connection asks for a
// fresh ticket; after a drop it reconnects with a growing delay. When the
// socket cannot be opened at all (an older pampad without tickets) the app
// falls back to polling, told through onStatus.
import type { ApiClient } from './client';
import type { PampaEvent } from './types';

export type StreamStatus = 'connecting' | 'live' | 'down';

export class EventStream {
  private ws: WebSocket | null = null;
  private stopped = false;
  private delay = 1000;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly api: ApiClient,
    private readonly onEvent: (e: PampaEvent) => void,
    private readonly onStatus: (s: StreamStatus, why?: string) => void,
  ) {}

  start(): void {
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    ws?.close();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.onStatus('connecting');
    let ws: WebSocket;
    try {
      ws = await this.api.openSocket('/api/v1/events', 'events');
    } catch (e) {
      this.retry(e instanceof Error ? e.message : String(e));
      return;
    }
    if (this.stopped) {
      ws.close();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 1000;
      this.onStatus('live');
    };
    ws.onmessage = (m) => {
      if (typeof m.data !== 'string') return;
      try {
        this.onEvent(JSON.parse(m.data) as PampaEvent);
      } catch {
        /* not JSON: not an event */
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.retry('the event stream closed');
    };
  }

  private retry(why: string): void {
    if (this.stopped) return;
    this.onStatus('down', why);
    this.timer = setTimeout(() => void this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, 30000);
  }
}
