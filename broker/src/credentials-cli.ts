import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../common/config/env.ts';
import { ConfigError, DriftlineError, describeError } from '../../common/errors.ts';
import { ROLES, isRole } from './acl.ts';
import { brokerConfigSpec } from './config.ts';
import { CredentialStore, generatePassword } from './credentials.ts';

/**
 * `npm run credentials -- <command>`: manages the broker's credentials file.
 * Passwords are stored only as salted scrypt hashes; `list` never prints them.
 */

export const USAGE = `Usage:
  npm run credentials -- add <username> --role <role> [--machine <id>] [--password <p> | --password-stdin] [--replace]
  npm run credentials -- remove <username>
  npm run credentials -- list [--json]

Options:
  --file <path>       credentials file (default: $BROKER_CREDENTIALS_FILE or .driftline/credentials.json)
  --role <role>       one of ${ROLES.join(', ')}
  --machine <id>      the machine a device role speaks for (devices only)
  --password <p>      the password (visible in shell history and ps; prefer --password-stdin)
  --password-stdin    read the password from standard input
                      without either, a random password is generated and printed once on stdout
  --replace           overwrite an existing user (password rotation)

A running broker reloads the file within BROKER_CREDENTIALS_RELOAD_MS (default 2 s) of a change.
`;

/** Where the CLI talks to; the process streams in production, buffers in tests. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  readStdin(): Promise<string>;
  env: NodeJS.ProcessEnv;
}

class UsageError extends Error {}

/** Runs one CLI command; resolves to the exit code (0 ok, 1 refused, 2 usage or configuration error). */
export async function runCredentialsCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    return await run(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.stderr(`${err.message}\n`);
      return 2;
    }
    io.stderr(`${err instanceof DriftlineError ? err.message : describeError(err)}\n`);
    return 1;
  }
}

async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        file: { type: 'string' },
        role: { type: 'string' },
        machine: { type: 'string' },
        password: { type: 'string' },
        'password-stdin': { type: 'boolean' },
        replace: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, username, ...extra] = positionals;
  if (values.help === true || command === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  if (command === undefined) throw new UsageError('no command given');
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);

  const config = loadConfig(
    { credentialsFile: brokerConfigSpec.credentialsFile, scryptCost: brokerConfigSpec.scryptCost },
    io.env,
  );
  const store = await CredentialStore.open(values.file ?? config.credentialsFile, {
    scryptCost: config.scryptCost,
    cacheTtlMs: 0,
  });

  switch (command) {
    case 'list': {
      if (username !== undefined) throw new UsageError('list takes no username');
      const users = store.list();
      if (values.json === true) {
        io.stdout(
          `${JSON.stringify(
            users.map(({ persisted: _p, ...u }) => u),
            null,
            2,
          )}\n`,
        );
      } else if (users.length === 0) {
        io.stderr(`no users in ${store.file}\n`);
      } else {
        const rows = [
          ['USERNAME', 'ROLE', 'MACHINE', 'CREATED'],
          ...users.map((u) => [u.username, u.role, u.machineId ?? '-', u.createdAt]),
        ];
        const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => (r[i] as string).length)));
        for (const r of rows)
          io.stdout(`${r.map((cell, i) => (i < 3 ? cell.padEnd(widths[i] as number) : cell)).join('  ')}\n`);
      }
      return 0;
    }
    case 'remove': {
      if (username === undefined) throw new UsageError('remove needs a username');
      if (!store.remove(username)) {
        io.stderr(`no user ${JSON.stringify(username)} in ${store.file}\n`);
        return 1;
      }
      await store.save();
      io.stderr(`removed ${JSON.stringify(username)}\n`);
      return 0;
    }
    case 'add': {
      if (username === undefined) throw new UsageError('add needs a username');
      if (values.role === undefined) throw new UsageError('add needs --role');
      if (!isRole(values.role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
      if (values.password !== undefined && values['password-stdin'] === true)
        throw new UsageError('give --password or --password-stdin, not both');
      let password = values.password;
      if (values['password-stdin'] === true) password = (await io.readStdin()).replace(/\r?\n$/, '');
      if (password !== undefined && password.length === 0) throw new UsageError('the password is empty');
      const generated = password === undefined;
      const secret = password ?? generatePassword();
      const summary = await store.add(
        {
          username,
          role: values.role,
          ...(values.machine === undefined ? {} : { machineId: values.machine }),
          password: secret,
        },
        { replace: values.replace === true },
      );
      await store.save();
      const who = `${summary.role} ${JSON.stringify(summary.username)}${summary.machineId === undefined ? '' : ` (machine ${summary.machineId})`}`;
      if (generated) {
        io.stderr(
          `added ${who} to ${store.file}; its generated password follows and is shown only this once:\n`,
        );
        io.stdout(`${secret}\n`);
      } else {
        io.stderr(`added ${who} to ${store.file}\n`);
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const code = await runCredentialsCli(process.argv.slice(2), {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    readStdin: () => readAll(process.stdin),
    env: process.env,
  });
  process.exitCode = code;
}
