/**
 * The chaos network's link states on real sockets: two echoing "nodes", each reached by the
 * other through the proxy of its own outgoing link.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Dialer, echoUpstream, type Upstream, until } from '../support/echo-peers.js';
import { ChaosNetwork } from './chaos-network.js';

describe('ChaosNetwork', () => {
  let nodes: Map<number, Upstream>;
  let network: ChaosNetwork;
  const dialers: Dialer[] = [];

  beforeEach(async () => {
    nodes = new Map([
      [1, await echoUpstream()],
      [2, await echoUpstream()],
      [3, await echoUpstream()],
    ]);
    network = await ChaosNetwork.start(new Map([...nodes].map(([id, n]) => [id, n.port])));
  });

  afterEach(async () => {
    for (const d of dialers.splice(0)) d.socket.destroy();
    await network.close();
    for (const n of nodes.values()) await new Promise((resolve) => n.server.close(resolve));
  });

  /** Node `from` connects to node `to` the way its cluster.json tells it to. */
  async function connect(from: number, to: number): Promise<Dialer> {
    const port = Number(network.dialAddress(from, to).split(':')[1]);
    const dialer = new Dialer(port);
    dialers.push(dialer);
    await dialer.connected();
    return dialer;
  }

  it('gives every directed pair its own proxy address', () => {
    const addresses = new Set<string>();
    for (const from of [1, 2, 3]) {
      for (const to of [1, 2, 3]) if (from !== to) addresses.add(network.dialAddress(from, to));
    }
    expect(addresses.size).toBe(6);
  });

  it('a blackholed link drops one direction on connections dialed from either end', async () => {
    const oneToTwo = await connect(1, 2);
    const twoToOne = await connect(2, 1);
    network.setLink(1, 2, 'blackhole');
    // 1 dialed 2: what 1 sends is lost.
    oneToTwo.socket.write('from-1');
    // 2 dialed 1: 2's bytes arrive, but 1's answer travels 1 -> 2 and is lost.
    twoToOne.socket.write('from-2');
    await until(() => nodes.get(1)!.received.includes('from-2'), 'node 1 to receive');
    await until(() => network.counters().droppedBytes === 6 + 'echo:from-2'.length, 'the drops');
    expect(nodes.get(2)!.received).toEqual([]);
    expect(twoToOne.data).toBe('');
    expect(network.faulty()).toEqual(['1>2 blackhole']);
  });

  it('isolating a node cuts its links both ways and leaves the others alone', async () => {
    const open = await connect(2, 3);
    const doomed = await connect(1, 3);
    network.split([1], 'cut');
    expect(await doomed.ended).toBe('ECONNRESET');
    for (const peer of [2, 3]) {
      expect(network.mode(1, peer)).toBe('cut');
      expect(network.mode(peer, 1)).toBe('cut');
    }
    open.socket.write('still');
    await until(() => open.data === 'echo:still', 'the echo between 2 and 3');
    network.heal();
    expect(network.faulty()).toEqual([]);
    const back = await connect(1, 3);
    back.socket.write('healed');
    await until(() => back.data === 'echo:healed', 'the echo after the heal');
    expect(network.counters().reset).toBe(1);
  });
});
