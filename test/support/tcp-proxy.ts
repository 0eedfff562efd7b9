import { AddressInfo, createConnection, createServer, Server, Socket } from 'node:net';

/**
 * A TCP proxy the test controls, between the app and Redis or Postgres. `cut()` resets every open
 * connection and refuses new ones (each is reset on accept) until `restore()`: to the app it looks
 * like the backing service went away; `stall()` keeps connections open but forwards nothing until
 * `resume()`. `cutWhen(pattern)` cuts at an exact point of the protocol:
 * just before the first client chunk that contains `pattern` is forwarded.
 */
export class TcpProxy {
  private server!: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  private refusing = false;
  private stalled = false;
  private trigger?: { pattern: Buffer; fired: () => void };
  port!: number;

  private constructor(private readonly target: { host: string; port: number }) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    proxy.server = createServer((client) => proxy.accept(client));
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as AddressInfo).port;
    return proxy;
  }

  /** `url` with its host and port replaced by the proxy's. */
  url(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  get connections(): number {
    return this.pairs.size;
  }

  cut(): void {
    this.refusing = true;
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  restore(): void {
    this.refusing = false;
  }

  /** Stops forwarding in both directions with every connection left open: a network path that went silent. */
  stall(): void {
    this.stalled = true;
    for (const pair of this.pairs) for (const s of pair) s.pause();
  }

  resume(): void {
    this.stalled = false;
    for (const pair of this.pairs) for (const s of pair) s.resume();
  }

  /** Resolves once a client chunk containing `pattern` arrived; the proxy cut everything instead of forwarding it. */
  cutWhen(pattern: string): Promise<void> {
    return new Promise((resolve) => {
      this.trigger = { pattern: Buffer.from(pattern), fired: resolve };
    });
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    client.on('error', () => {});
    if (this.refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection(this.target);
    upstream.on('error', () => client.destroy());
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    if (this.stalled) for (const s of pair) s.pause();
    const forget = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', forget);
    upstream.on('close', forget);
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('data', (chunk: Buffer) => {
      const t = this.trigger;
      if (t && chunk.includes(t.pattern)) {
        this.trigger = undefined;
        this.cut();
        t.fired();
        return;
      }
      upstream.write(chunk);
    });
  }
}
