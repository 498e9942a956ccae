// A child process for crash tests: opens an embedded store from the built package and writes
// keys w0, w1, ... one after another (with some concurrency), printing "ack <i>" to stdout as
// each write's promise resolves. The parent kills it with SIGKILL at a moment of its choosing.
import { Flotilla } from '../../dist/shards/index.js';

const [dir, shardsText, concurrencyText] = process.argv.slice(2);
const db = await Flotilla.open({ dir, shards: Number(shardsText) });
const concurrency = Number(concurrencyText);
let next = 0;
process.stdout.write('ready\n');
async function writer() {
  for (;;) {
    const i = next++;
    await db.put(`w${i}`, { i, pad: 'x'.repeat(64) });
    process.stdout.write(`ack ${i}\n`);
  }
}
await Promise.all(Array.from({ length: concurrency }, writer));
