/** `chaos` refuses bad usage before it starts anything (exit status 2, with the usage). */
import { expect, it } from 'vitest';
import { runChaosCli } from '../../bin/chaos.js';

it.each([
  [['--minutes', '1', '--nemesis', 'flood']],
  [['--minutes', '1', '--nemesis', '']],
  [['--minutes', '1', '--hasty-clients', '9']],
  [['--minutes', '1', '--hasty-ms', '0']],
  [['--minutes', '1', '--nodes', '2']],
  [['--minutes', '1', '--partitions']],
])('refuses %j', async (args) => {
  const printed: string[] = [];
  expect(await runChaosCli(args, (line) => printed.push(line))).toBe(2);
  expect(printed.join('\n')).toContain('--nemesis kill,freeze,partition');
});
