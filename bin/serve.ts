/**
 * `flotilla serve --config cluster.json --node N [--data DIR]`: runs one node of a cluster until
 * SIGINT or SIGTERM, then closes it cleanly.
 *
 * Everything is checked before anything is written: the config, the node id, the secret, the
 * data directory's identity, the Raft port and the client port, on which the node answers
 * `Flotilla.connect` clients. Once the node is up it prints one line,
 * `node N ready: raft HOST:PORT, client HOST:PORT`, which tests and `flotilla dev` wait for, and
 * then a line whenever this node starts or stops leading a shard.
 */
import { loadClusterConfig } from '../shards/cluster-config.js';
import { ClusterNode } from '../shards/cluster-node.js';

/** Options of the serve command. */
export interface ServeOptions {
  config: string;
  node: number;
  data?: string;
}

/** Runs the node until a signal asks it to stop. */
export async function serve(options: ServeOptions): Promise<void> {
  const config = loadClusterConfig(options.config);
  const node = await ClusterNode.start({
    config,
    nodeId: options.node,
    dataDir: options.data,
  });
  const leading = new Set<number>();
  node.onLeaderChange(({ group, leader, term }) => {
    if (leader === node.nodeId && !leading.has(group)) {
      leading.add(group);
      console.log(`node ${node.nodeId} leads shard ${group} (term ${term})`);
    } else if (leader !== node.nodeId && leading.delete(group)) {
      console.log(`node ${node.nodeId} no longer leads shard ${group} (term ${term})`);
    }
  });
  console.log(`node ${node.nodeId} ready: raft ${node.raftAddress}, client ${node.clientAddress}`);
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  console.log(`node ${node.nodeId} stopping (${signal})`);
  await node.close();
  console.log(`node ${node.nodeId} stopped`);
}
