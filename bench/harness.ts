/**
 * The benchmark harness shared by every suite in bench/suites/. A suite returns result rows; the
 * harness prints them as a table and, with --json, writes them with the machine they ran on.
 */
import { cpus } from 'node:os';
import { Bench, type Task } from 'tinybench';

/** One measured row. Rates are per second; latencies in microseconds. */
export interface BenchRow {
  name: string;
  opsPerSec: number;
  /** Payload bytes per second, when the row moves bytes; 0 otherwise. */
  bytesPerSec: number;
  p50Us: number;
  p99Us: number;
  samples: number;
  /** Free-form facts worth keeping beside the figures (sizes, ratios, settings). */
  note?: string;
}

/** What a suite is given. */
export interface SuiteContext {
  /** The small size, for CI and a quick look. */
  quick: boolean;
  /** A scratch directory on the disk under test, removed after the suite. */
  scratchDir: string;
  /** Progress lines go here, not to stdout tables. */
  log: (line: string) => void;
}

/** A benchmark suite, the default export of bench/suites/<name>.ts. */
export interface BenchSuite {
  name: string;
  description: string;
  run(ctx: SuiteContext): Promise<BenchRow[]>;
}

/** The JSON document `--json FILE` writes. */
export interface BenchReport {
  suite: string;
  node: string;
  cpus: number;
  cpuModel: string;
  quick: boolean;
  date: string;
  results: BenchRow[];
}

/** A tinybench task to measure, with the payload bytes one call moves. */
export interface MicroTask {
  name: string;
  fn: () => unknown;
  bytesPerOp?: number;
  /** Work units per call (e.g. records in a batch): opsPerSec counts units, not calls. */
  opsPerCall?: number;
}

/** Runs synchronous or async micro-benchmarks through tinybench and turns them into rows. */
export async function runMicro(tasks: MicroTask[], quick: boolean): Promise<BenchRow[]> {
  const bench = new Bench({ time: quick ? 150 : 1500, warmupTime: quick ? 30 : 300 });
  for (const t of tasks) bench.add(t.name, t.fn);
  await bench.run();
  return tasks.map((t) => rowFromTask(bench.getTask(t.name), t));
}

function rowFromTask(task: Task | undefined, spec: MicroTask): BenchRow {
  const result = task?.result;
  if (result === undefined || !('throughput' in result)) {
    throw new Error(`benchmark ${spec.name} produced no result (${result?.state ?? 'missing'})`);
  }
  const calls = result.throughput.mean;
  const perCall = spec.opsPerCall ?? 1;
  return {
    name: spec.name,
    opsPerSec: calls * perCall,
    bytesPerSec: calls * (spec.bytesPerOp ?? 0),
    p50Us: result.latency.p50 * 1000,
    p99Us: result.latency.p99 * 1000,
    samples: result.latency.samplesCount,
  };
}

/** Percentile (0..100) of unsorted samples; NaN for none. */
export function percentile(samples: ArrayLike<number>, p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** The machine facts a report carries. */
export function machine(): Pick<BenchReport, 'node' | 'cpus' | 'cpuModel'> {
  const list = cpus();
  return { node: process.version, cpus: list.length, cpuModel: list[0]?.model ?? 'unknown' };
}

function formatRate(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(1);
}

/** A fixed-width text table of rows. */
export function formatTable(rows: BenchRow[]): string {
  const header = ['name', 'ops/s', 'bytes/s', 'p50 µs', 'p99 µs', 'samples', 'note'];
  const lines = rows.map((r) => [
    r.name,
    formatRate(r.opsPerSec),
    r.bytesPerSec > 0 ? `${formatRate(r.bytesPerSec)}B` : '',
    Number.isFinite(r.p50Us) ? r.p50Us.toFixed(2) : '',
    Number.isFinite(r.p99Us) ? r.p99Us.toFixed(2) : '',
    String(r.samples),
    r.note ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}

/** Settings of a closed-loop load: `callers` concurrent loops, each awaiting one op at a time. */
export interface ClosedLoopSpec {
  name: string;
  callers: number;
  durationMs: number;
  /** One operation; `caller` is the loop's number, `n` its running count. */
  op: (caller: number, n: number) => Promise<unknown>;
  bytesPerOp?: number;
  /** Latency samples kept at most (reservoir), to bound memory. */
  samplesMax?: number;
}

/**
 * Runs a closed-loop load for a fixed time and reports throughput and latency percentiles. Each
 * caller issues its next operation as soon as the previous one resolves.
 */
export async function runClosedLoop(spec: ClosedLoopSpec): Promise<BenchRow> {
  const samplesMax = spec.samplesMax ?? 200_000;
  const samples = new Float64Array(samplesMax);
  let kept = 0;
  let seen = 0;
  let ops = 0;
  let state = 0x2545f491;
  const started = performance.now();
  const deadline = started + spec.durationMs;
  const loop = async (caller: number) => {
    for (let n = 0; performance.now() < deadline; n++) {
      const t0 = performance.now();
      await spec.op(caller, n);
      const us = (performance.now() - t0) * 1000;
      ops++;
      seen++;
      if (kept < samplesMax) samples[kept++] = us;
      else {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        const slot = state % seen;
        if (slot < samplesMax) samples[slot] = us;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.callers }, (_, i) => loop(i)));
  const seconds = (performance.now() - started) / 1000;
  const window = samples.subarray(0, kept);
  return {
    name: spec.name,
    opsPerSec: ops / seconds,
    bytesPerSec: (ops * (spec.bytesPerOp ?? 0)) / seconds,
    p50Us: percentile(window, 50),
    p99Us: percentile(window, 99),
    samples: ops,
  };
}
