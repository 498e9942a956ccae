import { MemoryLogStore } from '../../../engine/log/memory-log.js';
import { logStoreConformance } from './conformance.js';

logStoreConformance('MemoryLogStore', { open: async () => new MemoryLogStore() });
