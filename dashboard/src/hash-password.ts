import { readFile, rename, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { describeError } from '../../common/errors.ts';
import { DASHBOARD_ROLES, hashDashboardPassword, parseUsers, type DashboardUser } from './auth.ts';
import type { DashboardRole } from './shared/view.ts';

export const HASH_PASSWORD_USAGE = `usage: npm run dashboard -- hash-password --username NAME [--role viewer|operator] [--file users.json]

Reads the password from standard input (a prompt without echo on a terminal,
the first line when piped) and prints the dashboard users entry
{"username","role","salt","hash"} (salted scrypt; the password is not stored).
With --file, adds the entry to that JSON file (replacing a user of the same
name; the file is created with mode 0600). Point DASHBOARD_USERS_FILE at it.

  --username NAME   login name (1-64 characters)
  --role ROLE       viewer (default: watch only) or operator (may roll back)
  --file PATH       add the entry to this users file
`;

export interface HashPasswordIo {
  out(line: string): void;
  err(line: string): void;
  /** Reads the password (prompting when interactive). */
  readPassword(): Promise<string>;
}

/** Reads a password from stdin: no echo on a terminal, the first line otherwise. */
export async function readPasswordFromStdin(prompt = 'Password: '): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY) {
    process.stderr.write(prompt);
    return new Promise((resolve, reject) => {
      let value = '';
      stdin.setRawMode(true);
      stdin.setEncoding('utf8');
      const done = (err?: Error): void => {
        stdin.setRawMode(false);
        stdin.pause();
        stdin.off('data', onData);
        process.stderr.write('\n');
        if (err) reject(err);
        else resolve(value);
      };
      const onData = (chunk: string): void => {
        for (const ch of chunk) {
          if (ch === '\r' || ch === '\n') return done();
          if (ch === '\u0003') return done(new Error('cancelled'));
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
          else value += ch;
        }
      };
      stdin.on('data', onData);
      stdin.resume();
    });
  }
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(c as Buffer);
  return (Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '').trimEnd();
}

async function addToFile(file: string, entry: DashboardUser): Promise<'added' | 'replaced'> {
  let users: DashboardUser[] = [];
  try {
    users = parseUsers(await readFile(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const existed = users.some((u) => u.username === entry.username);
  users = [...users.filter((u) => u.username !== entry.username), entry];
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify({ users }, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
  return existed ? 'replaced' : 'added';
}

/** `npm run dashboard -- hash-password …`; returns the exit code. */
export async function runHashPasswordCli(argv: readonly string[], io: HashPasswordIo): Promise<number> {
  let values: {
    username?: string | undefined;
    role?: string | undefined;
    file?: string | undefined;
    help?: boolean | undefined;
  };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        username: { type: 'string' },
        role: { type: 'string' },
        file: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    }));
  } catch (err) {
    io.err(`${(err as Error).message}\n${HASH_PASSWORD_USAGE}`);
    return 2;
  }
  if (values.help === true) {
    io.out(HASH_PASSWORD_USAGE);
    return 0;
  }
  const username = values.username;
  const role = values.role ?? 'viewer';
  if (
    username === undefined ||
    username.trim() !== username ||
    username.length === 0 ||
    username.length > 64
  ) {
    io.err(`--username NAME is required (1-64 characters, no surrounding spaces)\n${HASH_PASSWORD_USAGE}`);
    return 2;
  }
  if (!(DASHBOARD_ROLES as readonly string[]).includes(role)) {
    io.err(`--role must be viewer or operator, got ${JSON.stringify(role)}`);
    return 2;
  }
  try {
    const password = await io.readPassword();
    if (password.length === 0) {
      io.err('empty password refused');
      return 2;
    }
    const entry = await hashDashboardPassword(username, role as DashboardRole, password);
    if (values.file !== undefined) {
      const what = await addToFile(values.file, entry);
      io.err(`${what} ${role} ${JSON.stringify(username)} in ${values.file}`);
    }
    io.out(JSON.stringify(entry));
    return 0;
  } catch (err) {
    io.err(describeError(err));
    return 1;
  }
}
