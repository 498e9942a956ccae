/**
 * The network of a chaos run: a LinkProxy for every directed node pair, so that the controller
 * can partition particular links between real `flotilla serve` processes.
 *
 * Wiring. Every node gets its own cluster.json (chaos-cluster.ts) in which its own entry holds
 * its real Raft address and every peer's entry holds the address of the proxy for the link from
 * this node to that peer. cluster.json's `raft` address is both where a node listens and where
 * its peers dial it, so one shared file could not route the links apart; a file per process
 * needs no change to the config format. A node's identity and shard placement depend only on
 * the node ids, which every file shares.
 *
 * Directions. The TCP transport keeps one connection per node pair, dialed by the lower id and
 * carrying both directions; today only the proxies from lower to higher ids see traffic, but
 * the link state is kept per direction (`from -> to`) and every proxy applies it to both ways
 * of its connections, so the wiring does not depend on who dials.
 *
 * Faults (per directed link, see link-proxy.ts): `blackhole` drops that direction's bytes on
 * open connections — a one-way partition until a node's idle timeout gives up on the
 * connection; `cut` resets connections and refuses new ones, in both directions, since a TCP
 * connection cannot live on one. `heal` sets every link up again.
 */
import {
  type LinkMode,
  LinkProxy,
  type LinkProxyCounters,
  zeroCounters,
} from '../support/link-proxy.js';

/** Counts of what the network did, summed over every proxy. */
export type NetworkCounters = LinkProxyCounters;

function linkKey(from: number, to: number): string {
  return `${from}>${to}`;
}

/** The proxies and link states of one chaos cluster; see the module comment. */
export class ChaosNetwork {
  private readonly links = new Map<string, LinkMode>();

  private constructor(
    readonly ids: number[],
    private readonly proxies: Map<string, LinkProxy>,
  ) {
    for (const key of proxies.keys()) this.links.set(key, 'up');
  }

  /** Starts a proxy per directed pair; `raftPorts` maps each node id to its real Raft port. */
  static async start(raftPorts: Map<number, number>): Promise<ChaosNetwork> {
    const proxies = new Map<string, LinkProxy>();
    try {
      for (const from of raftPorts.keys()) {
        for (const [to, port] of raftPorts) {
          if (to === from) continue;
          proxies.set(linkKey(from, to), await LinkProxy.start({ host: '127.0.0.1', port }));
        }
      }
    } catch (err) {
      await Promise.all([...proxies.values()].map((p) => p.close()));
      throw err;
    }
    return new ChaosNetwork([...raftPorts.keys()], proxies);
  }

  private proxy(from: number, to: number): LinkProxy {
    const proxy = this.proxies.get(linkKey(from, to));
    if (proxy === undefined) throw new Error(`no link ${from} -> ${to}`);
    return proxy;
  }

  /** The address node `from` dials to reach node `to`. */
  dialAddress(from: number, to: number): string {
    return this.proxy(from, to).address;
  }

  /** The mode of the link `from -> to`. */
  mode(from: number, to: number): LinkMode {
    return this.links.get(linkKey(from, to)) ?? 'up';
  }

  /** Sets the directed link `from -> to`; both proxies between the pair apply it. */
  setLink(from: number, to: number, mode: LinkMode): void {
    this.proxy(from, to);
    this.links.set(linkKey(from, to), mode);
    this.apply(from, to);
    this.apply(to, from);
  }

  /** Pushes the link states of the pair into the proxy that `dialer` dials. */
  private apply(dialer: number, acceptor: number): void {
    const proxy = this.proxy(dialer, acceptor);
    proxy.setModes(this.mode(dialer, acceptor), this.mode(acceptor, dialer));
  }

  /** Cuts or blackholes every link between `side` and the other nodes, both ways. */
  split(side: readonly number[], mode: Exclude<LinkMode, 'up'>): void {
    for (const a of side) {
      for (const b of this.ids) {
        if (side.includes(b)) continue;
        this.setLink(a, b, mode);
        this.setLink(b, a, mode);
      }
    }
  }

  /** Sets every link up again (connections that lost bytes are reset; the nodes redial). */
  heal(): void {
    for (const key of this.links.keys()) this.links.set(key, 'up');
    for (const key of this.proxies.keys()) {
      const [from, to] = key.split('>').map(Number) as [number, number];
      this.apply(from, to);
    }
  }

  /** Links not up right now, as "from -> to mode". */
  faulty(): string[] {
    return [...this.links].filter(([, m]) => m !== 'up').map(([k, m]) => `${k} ${m}`);
  }

  /** What every proxy did, summed. */
  counters(): NetworkCounters {
    const sum = zeroCounters();
    for (const proxy of this.proxies.values()) {
      for (const field of Object.keys(sum) as (keyof NetworkCounters)[]) {
        sum[field] += proxy.counters[field];
      }
    }
    return sum;
  }

  /** Closes every proxy. */
  async close(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
  }
}
