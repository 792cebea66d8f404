import { readFileSync } from 'node:fs';
import { projectPath } from './paths.ts';

/** The project version from the root package.json. */
export const VERSION: string = (
  JSON.parse(readFileSync(projectPath('package.json'), 'utf8')) as { version: string }
).version;
