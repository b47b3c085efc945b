// The lazy command registry: each group's declared names are exactly the commands it defines.
import { describe, expect, it } from 'vitest';
import { commandModules, modulesFor } from '../../scripts/commands/index.ts';
import { buildProgram } from '../../scripts/program.ts';

describe('command registry', () => {
  it('declares, per group, exactly the top-level commands the group registers', async () => {
    for (const m of commandModules) {
      const program = await buildProgram([m]);
      expect(program.commands.map((c) => c.name()).sort()).toEqual([...m.names].sort());
    }
  });

  it('loads one group for a known command and every group for help or unknown input', () => {
    expect(modulesFor(['clip', 'inspect', 'x.env'])).toHaveLength(1);
    expect(modulesFor(['family', 'create', '--data', 'd'])[0]?.names).toContain('family');
    expect(modulesFor(['--help'])).toBe(commandModules);
    expect(modulesFor(['frobnicate'])).toBe(commandModules);
  });
});
