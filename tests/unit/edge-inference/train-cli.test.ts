import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../common/errors.ts';
import { DEFAULT_SCENARIO_FILE } from '../../../common/model/bootstrap.ts';
import { parseTrainArgs } from '../../../edge-inference/src/train-cli.ts';

describe('parseTrainArgs', () => {
  it('applies defaults and parses every flag', () => {
    expect(parseTrainArgs(['--out', 'd'])).toEqual({
      out: 'd',
      scenarioFile: DEFAULT_SCENARIO_FILE,
      samples: 40_000,
      epochs: 30,
      seed: 1,
      holdout: 20_000,
      force: false,
    });
    expect(DEFAULT_SCENARIO_FILE.endsWith(path.join('scenarios', 'stationary.json'))).toBe(true);
    expect(
      parseTrainArgs([
        '--out=d',
        '--scenario-file',
        'f.json',
        '--samples',
        '500',
        '--epochs',
        '3',
        '--seed',
        '9',
        '--holdout',
        '100',
        '--force',
      ]),
    ).toEqual({
      out: 'd',
      scenarioFile: 'f.json',
      samples: 500,
      epochs: 3,
      seed: 9,
      holdout: 100,
      force: true,
    });
    expect(parseTrainArgs(['--help'])).toBeUndefined();
  });

  it('reports every bad flag in one ConfigError', () => {
    expect(() => parseTrainArgs([])).toThrow(ConfigError);
    const err = (() => {
      try {
        parseTrainArgs(['--samples', 'many', '--epochs', '0']);
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(err?.message).toMatch(
      /--samples="many" is invalid.*--epochs="0" is invalid.*--out DIR is required/,
    );
    expect(() => parseTrainArgs(['--out', 'd', '--bogus'])).toThrow(/bogus/);
  });
});
