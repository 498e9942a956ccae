/**
 * Self-signed certificates for TLS tests. Node has no certificate generator, so the tests use
 * openssl when the machine has it (and skip otherwise).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether openssl is on this machine. */
export const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

/** Makes certificates in a temporary directory; `dispose()` removes it. */
export function certificateMaker(): {
  selfSigned(name: string): { key: Buffer; cert: Buffer };
  dispose(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-tls-'));
  return {
    /** A fresh self-signed P-256 certificate for 127.0.0.1, valid for a day. */
    selfSigned(name) {
      const key = join(dir, `${name}.key`);
      const cert = join(dir, `${name}.crt`);
      const result = spawnSync('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        `/CN=${name}`,
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ]);
      if (result.status !== 0) throw new Error(`openssl failed: ${result.stderr.toString()}`);
      return { key: readFileSync(key), cert: readFileSync(cert) };
    },
    dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
