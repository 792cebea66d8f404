import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError } from '../../common/errors.ts';
import { describeIssues } from '../../common/scenario/issues.ts';
import type { SimulatorCredentials } from './publisher.ts';

/**
 * The simulator's credentials file:
 * `{ "devices": {"m-000": "password", ...}, "inspection": {"username": "...", "password": "..."} }`.
 * Other top-level keys are ignored, so one file may serve several tools.
 */
export const credentialsSchema = z.object({
  devices: z.record(z.string().min(1), z.string().min(1)),
  inspection: z.strictObject({ username: z.string().min(1), password: z.string().min(1) }),
});

/** Validates parsed credentials; throws a {@link ConfigError} naming the bad field (never a password). */
export function parseCredentials(json: unknown, source = 'credentials'): SimulatorCredentials {
  const r = credentialsSchema.safeParse(json, { reportInput: true });
  if (!r.success)
    throw new ConfigError(
      `${source}: ${describeIssues(r.error.issues, 'credentials', { showInput: false }).join('; ')}`,
    );
  return r.data;
}

export async function loadCredentialsFile(path: string): Promise<SimulatorCredentials> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read credentials file ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigError(`credentials file ${path} is not valid JSON`);
  }
  return parseCredentials(json, `credentials file ${path}`);
}
