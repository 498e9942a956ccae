// Record framing over kernel memory. Layout: wasm/format.ts; specification:
// wasm/reference/framing.ts. Status and reason codes are mirrored in wasm/loader.ts.
import { crcRaw } from './crc32c';

// recordHeaderBytes and recordPayloadBytesMax of wasm/format.ts (hard format constants).
const HEADER_BYTES: usize = 32;
const PAYLOAD_BYTES_MAX: u32 = 64 * 1024 * 1024;

/** Bytes per encode descriptor: type, group, term lo/hi, index lo/hi, payload length, 0. */
export const DESCRIPTOR_BYTES: usize = 32;

// Decode statuses. MORE means "the window ends before this record does": the loader slides
// its window and calls again; a final window never reports it.
const STATUS_OK: u32 = 0;
const STATUS_ZERO: u32 = 1;
const STATUS_TORN: u32 = 2;
const STATUS_CORRUPT: u32 = 3;
const STATUS_MORE: u32 = 4;
const REASON_NONE: u32 = 0;
const REASON_CHECKSUM: u32 = 1;
const REASON_LENGTH: u32 = 2;
const REASON_HEADER: u32 = 3;

/**
 * Frames `count` records into `out`. Descriptor i sits at `desc + 32 i`; the loader has already
 * copied each payload to its place after its header. Returns the bytes written.
 */
export function encode(desc: usize, count: usize, out: usize): usize {
  let at = out;
  for (let i: usize = 0; i < count; i++) {
    const d = desc + i * DESCRIPTOR_BYTES;
    const length = load<u32>(d, 24);
    store<u32>(at, length, 4);
    // type byte, then flags and the reserved u16, all zero
    store<u32>(at, load<u8>(d), 8);
    store<u32>(at, load<u32>(d, 4), 12);
    store<u64>(at, load<u64>(d, 8), 16);
    store<u64>(at, load<u64>(d, 16), 24);
    const bytes = HEADER_BYTES + <usize>length;
    store<u32>(at, ~crcRaw(~0, at + 4, bytes - 4));
    at += bytes;
  }
  return at - out;
}

function isZero(ptr: usize, len: usize): bool {
  let p = ptr;
  const end = ptr + len;
  for (; end - p >= 8; p += 8) if (load<u64>(p) != 0) return false;
  for (; p < end; p++) if (load<u8>(p) != 0) return false;
  return true;
}

function finish(result: usize, status: u32, reason: u32, end: usize, count: u32): u32 {
  store<u32>(result, status);
  store<u32>(result, reason, 4);
  store<u32>(result, <u32>end, 8);
  store<u32>(result, count, 12);
  return count;
}

/**
 * Verifies records from `ptr` over `len` bytes, at most `cap` of them. Writes each record's
 * offset plus `base` to `offsets`, and status, reason, end (relative to `ptr`) and count to
 * `result`. `final` says the buffer truly ends at `len`; otherwise a record that runs past it
 * stops the pass with MORE instead of TORN.
 */
export function decode(
  ptr: usize,
  len: usize,
  cap: u32,
  final: bool,
  base: u32,
  offsets: usize,
  result: usize,
): u32 {
  let at: usize = 0;
  let count: u32 = 0;
  while (at < len && count < cap) {
    const remaining = len - at;
    const rec = ptr + at;
    if (remaining < HEADER_BYTES) {
      if (!final) return finish(result, STATUS_MORE, REASON_NONE, at, count);
      const status = isZero(rec, remaining) ? STATUS_ZERO : STATUS_TORN;
      return finish(result, status, REASON_NONE, at, count);
    }
    if (!v128.any_true(v128.or(v128.load(rec), v128.load(rec, 16)))) {
      return finish(result, STATUS_ZERO, REASON_NONE, at, count);
    }
    const length = load<u32>(rec, 4);
    if (length > PAYLOAD_BYTES_MAX) {
      return finish(result, STATUS_CORRUPT, REASON_LENGTH, at, count);
    }
    const bytes = HEADER_BYTES + <usize>length;
    if (bytes > remaining) {
      return finish(result, final ? STATUS_TORN : STATUS_MORE, REASON_NONE, at, count);
    }
    if (~crcRaw(~0, rec + 4, bytes - 4) != load<u32>(rec)) {
      return finish(result, STATUS_CORRUPT, REASON_CHECKSUM, at, count);
    }
    // type must be non-zero; flags and the reserved u16 must be zero
    const word = load<u32>(rec, 8);
    if ((word & 0xff) == 0 || word >>> 8 != 0) {
      return finish(result, STATUS_CORRUPT, REASON_HEADER, at, count);
    }
    store<u32>(offsets + ((<usize>count) << 2), base + <u32>at);
    count++;
    at += bytes;
  }
  // Out of input but not of records to verify: the caller's buffer goes on past the window.
  const status = at == len && count < cap && !final ? STATUS_MORE : STATUS_OK;
  return finish(result, status, REASON_NONE, at, count);
}
