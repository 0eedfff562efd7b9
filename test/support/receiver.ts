import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
  /** The status this receiver answered with. */
  status: number;
}

/** A real HTTP endpoint for webhooks: records every request and fails the first N of a path on demand. */
export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  private readonly failures = new Map<string, number>();
  private readonly delays = new Map<string, number>();
  private server!: Server;
  base!: string;

  static async start(): Promise<WebhookReceiver> {
    const r = new WebhookReceiver();
    r.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        const left = r.failures.get(path) ?? 0;
        const status = left > 0 ? 500 : 202;
        if (left > 0) r.failures.set(path, left - 1);
        r.requests.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now(), status });
        const answer = () => res.writeHead(status, { 'content-type': 'application/json' }).end(status === 202 ? '' : '{"err":"boom"}');
        const delay = r.delays.get(path);
        if (delay) setTimeout(answer, delay);
        else answer();
      });
    });
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    r.base = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}`;
    return r;
  }

  /** A fresh path on this receiver. */
  path(name: string): string {
    return `/${name}-${Math.random().toString(36).slice(2, 10)}`;
  }

  url(path: string): string {
    return this.base + path;
  }

  /** Answers 500 to the next `n` requests on `path` (Infinity: always). */
  failNext(path: string, n: number): void {
    this.failures.set(path, n);
  }

  /** Answers requests on `path` only after `ms` (a slow receiver). */
  slow(path: string, ms: number): void {
    this.delays.set(path, ms);
  }

  on(path: string): ReceivedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
