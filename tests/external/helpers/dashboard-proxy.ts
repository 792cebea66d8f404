import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy in front of the dashboard for the browser tests: `cut()` drops
 * every connection and refuses new ones (the server looks gone to the
 * browser), `restore()` listens again on the same port. This is how the tests
 * watch the page's EventSource reconnect without losing the server's sessions.
 */
export interface CuttableProxy {
  readonly url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<CuttableProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<net.Socket>();
  const handle = (client: net.Socket): void => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client);
    sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  };
  let server = net.createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const listenPort = (server.address() as AddressInfo).port;
  let listening = true;
  const stop = async (): Promise<void> => {
    if (!listening) return;
    listening = false;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of sockets) s.destroy();
    sockets.clear();
    await closed;
  };
  return {
    url: `http://127.0.0.1:${listenPort}`,
    cut: stop,
    async restore() {
      if (listening) return;
      server = net.createServer(handle);
      await new Promise<void>((r) => server.listen(listenPort, '127.0.0.1', r));
      listening = true;
    },
    close: stop,
  };
}
