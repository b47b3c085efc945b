// The lazy command registry: each group's declared names are exactly the commands it defines.
import { describe, expect, it } from 'vitest';
import { formatDurationMs } from '../../scripts/cli-util.ts';
import { commandModules, modulesFor } from '../../scripts/commands/index.ts';
import { buildProgram } from '../../scripts/program.ts';

describe('command registry', () => {
  it('declares, per group, exactly the top-level commands the group registers', async () => {
    for (const m of commandModules) {
      const program = await buildProgram([m]);
      expect(program.commands.map((c) => c.name()).sort()).toEqual([...m.names].sort());
    }
  });

  it('shows duration defaults in the unit a user types', async () => {
    expect(formatDurationMs(250)).toBe('250ms');
    expect(formatDurationMs(30_000)).toBe('30s');
    expect(formatDurationMs(1500)).toBe('1.5s');
    expect(formatDurationMs(7 * 86_400_000)).toBe('7d');
    const program = await buildProgram(modulesFor(['gateway']));
    const help = program.commands.find((c) => c.name() === 'gateway')!.helpInformation();
    expect(help).toContain('(default: 7d)');
    expect(help).not.toContain('604800000');
  });

  it('loads one group for a known command and every group for help or unknown input', () => {
    expect(modulesFor(['clip', 'inspect', 'x.env'])).toHaveLength(1);
    expect(modulesFor(['family', 'create', '--data', 'd'])[0]?.names).toContain('family');
    expect(modulesFor(['--help'])).toBe(commandModules);
    expect(modulesFor(['frobnicate'])).toBe(commandModules);
  });
});
