import { describe, expect, it } from 'vitest';
import { FaultFs } from './fault-fs.js';

const bytes = (...values: number[]) => Uint8Array.from(values);

async function contents(fs: FaultFs, path: string): Promise<number[]> {
  const file = await fs.open(path, false);
  const out = new Uint8Array(await file.size());
  file.readSync(out, 0);
  await file.close();
  return [...out];
}

describe('FaultFs', () => {
  it('keeps synced data and directory entries across a crash', async () => {
    const fs = new FaultFs({ seed: 1 });
    await fs.mkdir('/d');
    const file = await fs.open('/d/a', true);
    await file.write(bytes(1, 2, 3), 0);
    await file.datasync();
    await fs.syncDir('/d');
    const after = fs.crash();
    expect(await after.readdir('/d')).toEqual(['a']);
    expect(await contents(after, '/d/a')).toEqual([1, 2, 3]);
  });

  it('loses unsynced writes, tearing the first lost one at a random byte', async () => {
    const kept = new Set<number>();
    for (let seed = 1; seed <= 40; seed++) {
      const fs = new FaultFs({ seed });
      await fs.mkdir('/d');
      const file = await fs.open('/d/a', true);
      await file.write(new Uint8Array(100).fill(7), 0);
      await file.datasync();
      await fs.syncDir('/d');
      await file.write(new Uint8Array(100).fill(9), 100);
      const data = await contents(fs.crash(), '/d/a');
      expect(data.slice(0, 100).every((b) => b === 7)).toBe(true);
      const nines = data.slice(100).filter((b) => b === 9).length;
      expect(nines).toBeLessThanOrEqual(100);
      kept.add(nines === 0 ? 0 : nines === 100 ? 100 : 50);
    }
    expect(kept).toEqual(new Set([0, 50, 100]));
  });

  it('may lose a create or rename until the directory is synced; renames are atomic', async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 40; seed++) {
      const fs = new FaultFs({ seed });
      await fs.mkdir('/d');
      const file = await fs.open('/d/a.tmp', true);
      await file.write(bytes(5), 0);
      await file.datasync();
      await fs.rename('/d/a.tmp', '/d/a');
      const names = await fs.crash().readdir('/d');
      expect(['', 'a', 'a.tmp']).toContain(names.join());
      outcomes.add(names.join());
    }
    expect(outcomes.size).toBeGreaterThan(1);
  });

  it('fails the chosen call once with the chosen code, and counts calls', async () => {
    const fs = new FaultFs({ seed: 2 });
    await fs.mkdir('/d');
    const file = await fs.open('/d/a', true);
    fs.failNext('datasync');
    await expect(file.datasync()).rejects.toMatchObject({ code: 'EIO' });
    await file.datasync();
    fs.failNext('open', { code: 'ENOSPC', path: 'b' });
    await expect(fs.open('/d/b', true)).rejects.toMatchObject({ code: 'ENOSPC' });
    await fs.open('/d/c', true);
    expect(fs.count('datasync')).toBe(2);
    expect(fs.count('open')).toBe(3);
  });

  it('forgets the writes a failed fdatasync should have saved, as Linux does', async () => {
    const fs = new FaultFs({ seed: 3 });
    await fs.mkdir('/d');
    const file = await fs.open('/d/a', true);
    await fs.syncDir('/d');
    await file.write(bytes(1, 1), 0);
    fs.failNext('datasync');
    await expect(file.datasync()).rejects.toMatchObject({ code: 'EIO' });
    await file.datasync();
    expect(await contents(fs.crash(), '/d/a')).toEqual([]);
  });

  it('fails every call of the file system of a machine that crashed', async () => {
    const fs = new FaultFs({ seed: 4 });
    await fs.mkdir('/d');
    const file = await fs.open('/d/a', true);
    fs.crash();
    await expect(file.write(bytes(1), 0)).rejects.toMatchObject({ code: 'EIO' });
    await expect(fs.readdir('/d')).rejects.toMatchObject({ code: 'EIO' });
  });

  it('replays the same crash for the same seed', async () => {
    const run = async () => {
      const fs = new FaultFs({ seed: 77 });
      await fs.mkdir('/d');
      const file = await fs.open('/d/a', true);
      await fs.syncDir('/d');
      for (let i = 0; i < 5; i++) await file.write(new Uint8Array(50).fill(i + 1), i * 50);
      return contents(fs.crash(), '/d/a');
    };
    expect(await run()).toEqual(await run());
  });
});
