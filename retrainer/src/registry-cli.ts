import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { describeError, DriftlineError } from '../../common/errors.ts';
import { createLogger } from '../../common/logging/logger.ts';
import { DEFAULT_REGISTRY_DIR } from '../../common/registry/directory.ts';
import { createRegistry } from '../../common/registry/factory.ts';
import { DEFAULT_MODEL_NAME } from '../../common/model/types.ts';
import type { AliasChange, ModelRegistry, ModelVersion } from '../../common/registry/types.ts';

/**
 * Operator's view of the model registry, on whichever registry the environment
 * selects (MLflow when `MLFLOW_TRACKING_URI` is set, else the directory at
 * `REGISTRY_DIR`, default `.driftline/registry`):
 *
 *     npm run registry -- list      [--model NAME] [--json]
 *     npm run registry -- champion  [--model NAME] [--json]
 *     npm run registry -- history   [--model NAME] [--json]
 *     npm run registry -- rollback  [--model NAME] --reason TEXT [--by WHO] [--correlation-id ID]
 *
 * `rollback` moves the `champion` alias back to the previous champion and
 * prints what changed; edge workers following the registry pick it up on their
 * next poll. Exit codes: 0 done, 1 refused or failed, 2 usage error.
 */

const USAGE = `usage: npm run registry -- <list|champion|history|rollback> [options]

  list       every version with status, checksum and metrics
  champion   the version the "champion" alias points at
  history    every move of the champion alias (who, why, from → to)
  rollback   move the champion back to the previous champion

options:
  --model NAME           registered model (default driftline-efficiency or MODEL_NAME)
  --reason TEXT          why (required for rollback)
  --by WHO               who (default cli:<user>)
  --correlation-id ID    correlation id recorded with the rollback
  --json                 machine-readable output
  -h, --help             this text

environment: MLFLOW_TRACKING_URI selects MLflow; otherwise REGISTRY_DIR (default ${DEFAULT_REGISTRY_DIR}).`;

function short(checksum: string): string {
  return checksum ? checksum.slice(0, 12) : '-';
}

function formatMetrics(metrics: Record<string, number>): string {
  const keys = [
    'accuracy',
    'macroF1',
    ...Object.keys(metrics).filter((k) => k !== 'accuracy' && k !== 'macroF1'),
  ].filter((k) => k in metrics);
  return keys
    .slice(0, 4)
    .map((k) => `${k}=${Number(metrics[k]).toFixed(4).replace(/0+$/, '').replace(/\.$/, '')}`)
    .join(' ');
}

function formatVersion(v: ModelVersion): string {
  const parts = [
    `v${v.version}`.padEnd(6),
    v.status.padEnd(9),
    v.createdAt,
    `sha256:${short(v.checksum)}`,
    formatMetrics(v.metrics),
  ];
  if (v.runId) parts.push(`run=${v.runId}`);
  if (v.rejectedReason) parts.push(`rejected: ${v.rejectedReason}`);
  return parts.filter(Boolean).join('  ');
}

function formatChange(c: AliasChange): string {
  const move = `${c.from ? `v${c.from}` : '(none)'} → v${c.to}`;
  return (
    `${c.at}  ${c.action.padEnd(8)}  ${move.padEnd(14)}  by ${c.by}: ` +
    `${c.reason}${c.correlationId ? `  [${c.correlationId}]` : ''}`
  );
}

/** Runs one CLI command; returns the exit code. Exported for tests. */
export async function runRegistryCli(
  argv: readonly string[],
  io: {
    out: (line: string) => void;
    err: (line: string) => void;
    env?: NodeJS.ProcessEnv;
    registry?: ModelRegistry;
  },
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        model: { type: 'string' },
        reason: { type: 'string' },
        by: { type: 'string' },
        'correlation-id': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    io.err(describeError(err));
    io.err(USAGE);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === undefined) {
    (values.help ? io.out : io.err)(USAGE);
    return values.help ? 0 : 2;
  }
  if (!['list', 'champion', 'history', 'rollback'].includes(command) || positionals.length > 1) {
    io.err(`unknown command: ${positionals.join(' ')}`);
    io.err(USAGE);
    return 2;
  }
  const env = io.env ?? process.env;
  const model = values.model ?? env.MODEL_NAME ?? DEFAULT_MODEL_NAME;
  if (command === 'rollback' && !values.reason) {
    io.err('rollback needs --reason TEXT (it is recorded in the history)');
    return 2;
  }

  const logger = createLogger({
    service: 'registry-cli',
    level: env.LOG_LEVEL ?? 'warn',
    format: 'pretty',
    stream: process.stderr,
  });
  let registry: ModelRegistry;
  try {
    registry =
      io.registry ?? createRegistry({ registryDir: env.REGISTRY_DIR || DEFAULT_REGISTRY_DIR, logger, env });
  } catch (err) {
    io.err(describeError(err));
    return 1;
  }
  const json = (value: unknown): void => io.out(JSON.stringify(value, null, 2));
  try {
    if (!values.json) io.out(`registry: ${registry.kind}   model: ${model}`);
    switch (command) {
      case 'list': {
        const versions = await registry.listVersions(model);
        if (values.json) json(versions);
        else if (versions.length === 0) io.out('no versions registered');
        else for (const v of versions) io.out(formatVersion(v));
        return 0;
      }
      case 'champion': {
        const champion = await registry.getChampion(model);
        if (values.json) json(champion ?? null);
        else io.out(champion ? formatVersion(champion) : 'no champion yet');
        return champion ? 0 : 1;
      }
      case 'history': {
        const history = await registry.history(model);
        if (values.json) json(history);
        else if (history.length === 0) io.out('no alias moves recorded');
        else for (const c of history) io.out(formatChange(c));
        return 0;
      }
      default: {
        const before = await registry.getChampion(model);
        const by = values.by ?? `cli:${os.userInfo().username}`;
        const after = await registry.rollback(model, {
          by,
          reason: values.reason as string,
          ...(values['correlation-id'] ? { correlationId: values['correlation-id'] } : {}),
        });
        if (values.json)
          json({
            model,
            from: before?.version ?? null,
            to: after.version,
            by,
            reason: values.reason,
            champion: after,
          });
        else {
          io.out(
            `rolled back ${model}: champion v${before?.version ?? '?'} ` +
              `→ v${after.version} (by ${by}: ${values.reason})`,
          );
          io.out(formatVersion(after));
        }
        return 0;
      }
    }
  } catch (err) {
    io.err(err instanceof DriftlineError ? `${err.code}: ${err.message}` : describeError(err));
    return 1;
  } finally {
    await registry.close();
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  runRegistryCli(process.argv.slice(2), { out: (l) => console.log(l), err: (l) => console.error(l) }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(describeError(err));
      process.exitCode = 1;
    },
  );
}
