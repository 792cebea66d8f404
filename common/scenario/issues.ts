import type { z } from 'zod';
import { FEATURES } from '../schema/features.ts';

/**
 * Readable zod issues: one line per problem, naming the field by its path, e.g.
 * `phases[1].features.vibrationHz.mul: expected a number, got "x"`.
 */

/**
 * One line per issue; `root` names the whole value when the path is empty.
 * Parse with `{ reportInput: true }` so missing fields read as `required`; pass
 * `showInput: false` to keep offending values (e.g. passwords) out of the text.
 */
export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  root = 'value',
  options: { showInput?: boolean } = {},
): string[] {
  const show = options.showInput ?? true;
  return issues.flatMap((issue) => describeIssue(issue, root, show));
}

/** `['phases', 1, 'features']` → `phases[1].features`. */
export function formatPath(path: readonly PropertyKey[], root = 'value'): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? root : out;
}

const ARTICLE: Record<string, string> = {
  int: 'an integer',
  object: 'an object',
  array: 'an array',
  number: 'a number',
  string: 'a string',
  boolean: 'a boolean',
};

function typeOf(input: unknown): string {
  return input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input;
}

function describeInput(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'an array';
  if (typeof input === 'object') return 'an object';
  if (typeof input === 'string') return JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input);
  return String(input);
}

function describeIssue(issue: z.core.$ZodIssue, root: string, show: boolean): string[] {
  const got = (input: unknown): string => (show ? `, got ${describeInput(input)}` : '');
  const path = formatPath(issue.path, root);
  switch (issue.code) {
    case 'invalid_type': {
      const expected = ARTICLE[issue.expected] ?? issue.expected;
      if (issue.input === undefined) return [`${path}: required, expected ${expected}`];
      return [
        `${path}: expected ${expected}, got ${show ? describeInput(issue.input) : typeOf(issue.input)}`,
      ];
    }
    case 'unrecognized_keys': {
      const inFeatures = issue.path[issue.path.length - 1] === 'features';
      return issue.keys.map((k) =>
        inFeatures
          ? `${formatPath([...issue.path, k])}: unknown feature (expected one of ${FEATURES.join(', ')})`
          : `${formatPath([...issue.path, k])}: unknown field`,
      );
    }
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const bound = String(small ? issue.minimum : issue.maximum);
      const size = small ? 'at least' : 'at most';
      if (issue.origin === 'array')
        return [`${path}: expected ${size} ${bound} item${bound === '1' ? '' : 's'}`];
      if (issue.origin === 'string') return [`${path}: expected ${size} ${bound} characters`];
      const op = `${small ? '>' : '<'}${issue.inclusive ? '=' : ''}`;
      return [`${path}: expected a number ${op} ${bound}${got(issue.input)}`];
    }
    case 'invalid_value':
      return [`${path}: expected one of ${issue.values.map((v) => String(v)).join(', ')}${got(issue.input)}`];
    case 'invalid_union': {
      const options = (issue as { options?: unknown[] }).options;
      return [`${path}: expected one of ${options ? options.map(String).join(', ') : 'the allowed forms'}`];
    }
    case 'invalid_format':
      return [`${path}: ${issue.message}`];
    default:
      return [`${path}: ${issue.message}`];
  }
}
