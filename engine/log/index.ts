/**
 * The shared log of a node: the LogStore contract, the segmented file log, its in-memory twin,
 * and the file-system interface the file log runs on.
 */
export { type LogFile, type LogFs, nodeLogFs } from './fs.js';
export type { GroupWrite, LogStore } from './log-store.js';
export { MemoryLogStore } from './memory-log.js';
export { type LogStats, SegmentedLog, type SegmentedLogOptions } from './segmented-log.js';
