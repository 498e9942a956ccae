/**
 * The partitioning proxy on real loopback sockets: an upstream that echoes what it receives with
 * a prefix, a dialer that writes through the proxy.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Dialer, echoUpstream, pause, type Upstream, until } from './echo-peers.js';
import { LinkProxy } from './link-proxy.js';

describe('LinkProxy', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function setup(): Promise<{ upstream: Upstream; proxy: LinkProxy }> {
    const upstream = await echoUpstream();
    cleanup.push(() => new Promise((resolve) => upstream.server.close(() => resolve())));
    const proxy = await LinkProxy.start({ host: '127.0.0.1', port: upstream.port });
    cleanup.push(() => proxy.close());
    return { upstream, proxy };
  }

  function dial(port: number): Dialer {
    const dialer = new Dialer(port);
    cleanup.push(async () => {
      dialer.socket.destroy();
    });
    return dialer;
  }

  it('passes bytes both ways while the link is up', async () => {
    const { upstream, proxy } = await setup();
    const dialer = dial(proxy.port);
    await dialer.connected();
    dialer.socket.write('ping');
    await until(() => dialer.data === 'echo:ping', 'the echo');
    expect(upstream.received).toEqual(['ping']);
    expect(proxy.counters.accepted).toBe(1);
    expect(proxy.counters.forwardedBytes).toBe('ping'.length + 'echo:ping'.length);
  });

  it('a forward blackhole drops what the dialer sends and keeps the connection open', async () => {
    const { upstream, proxy } = await setup();
    const dialer = dial(proxy.port);
    await dialer.connected();
    dialer.socket.write('a');
    await until(() => dialer.data === 'echo:a', 'the first echo');
    proxy.setModes('blackhole', 'up');
    dialer.socket.write('lost');
    await until(() => proxy.counters.droppedBytes === 4, 'the drop');
    expect(upstream.received).toEqual(['a']);
    expect(dialer.socket.destroyed).toBe(false);
    expect(proxy.connections).toBe(1);
  });

  it('a backward blackhole lets the upstream receive while its answers vanish', async () => {
    const { upstream, proxy } = await setup();
    const dialer = dial(proxy.port);
    await dialer.connected();
    proxy.setModes('up', 'blackhole');
    dialer.socket.write('one-way');
    await until(() => upstream.received.length === 1, 'the upstream to receive');
    await until(() => proxy.counters.droppedBytes === 'echo:one-way'.length, 'the drop');
    expect(dialer.data).toBe('');
  });

  it('healing a blackhole resets the connections that lost bytes, and new ones pass', async () => {
    const { proxy } = await setup();
    const torn = dial(proxy.port);
    await torn.connected();
    proxy.setModes('blackhole', 'up');
    torn.socket.write('x');
    await until(() => proxy.counters.droppedBytes === 1, 'the drop');
    proxy.setModes('up', 'up');
    expect(await torn.ended).toBe('ECONNRESET');
    expect(proxy.counters.reset).toBe(1);
    const fresh = dial(proxy.port);
    await fresh.connected();
    fresh.socket.write('y');
    await until(() => fresh.data === 'echo:y', 'the echo after the heal');
  });

  it('a blackhole that dropped nothing leaves the connection alone when it heals', async () => {
    const { proxy } = await setup();
    const dialer = dial(proxy.port);
    await dialer.connected();
    proxy.setModes('blackhole', 'blackhole');
    await pause(20);
    proxy.setModes('up', 'up');
    dialer.socket.write('z');
    await until(() => dialer.data === 'echo:z', 'the echo');
    expect(proxy.counters.reset).toBe(0);
  });

  it('a cut in either direction resets open connections and refuses new ones', async () => {
    const { upstream, proxy } = await setup();
    const open = dial(proxy.port);
    await open.connected();
    await until(() => proxy.connections === 1, 'the connection');
    proxy.setModes('up', 'cut');
    expect(await open.ended).toBe('ECONNRESET');
    const refused = dial(proxy.port);
    expect(await refused.ended).toBe('ECONNRESET');
    expect(proxy.counters.refused).toBe(1);
    expect(proxy.counters.reset).toBe(1);
    expect(upstream.received).toEqual([]);
    proxy.setModes('up', 'up');
    const again = dial(proxy.port);
    await again.connected();
    again.socket.write('back');
    await until(() => again.data === 'echo:back', 'the echo after the cut');
  });

  it('closes the dialer when the upstream refuses (its node is down)', async () => {
    const upstream = await echoUpstream();
    await new Promise<void>((resolve) => upstream.server.close(() => resolve()));
    const proxy = await LinkProxy.start({ host: '127.0.0.1', port: upstream.port });
    cleanup.push(() => proxy.close());
    const dialer = dial(proxy.port);
    expect(['closed', 'ECONNRESET']).toContain(await dialer.ended);
    expect(proxy.counters.socketErrors).toBe(1);
    expect(proxy.connections).toBe(0);
  });
});
