import { Registry } from 'prom-client';
import { startBroker, type RunningBroker } from '../../broker/src/broker.ts';
import { CredentialStore } from '../../broker/src/credentials.ts';
import { createLogger } from '../../common/logging/logger.ts';
import type { Account } from './accounts.ts';
import { selfUsage, serve } from './ipc.ts';

/** The project's aedes broker (`startBroker`, as `npm run broker` runs it) in its own process. */

let broker: RunningBroker | undefined;

serve({
  async start(raw) {
    const { accounts } = raw as { accounts: Account[] };
    // Logins are cached after the first scrypt; a low cost keeps the benchmark's start-up short.
    const credentials = CredentialStore.inMemory({ scryptCost: 10 });
    for (const a of accounts)
      await credentials.add(
        {
          username: a.username,
          password: a.password,
          role: a.role,
          ...(a.machineId ? { machineId: a.machineId } : {}),
        },
        { persist: false },
      );
    broker = await startBroker({
      port: 0,
      wsPort: null,
      httpPort: null,
      credentials,
      registry: new Registry(),
      logger: createLogger({ service: 'broker', level: 'warn', format: 'json', stream: process.stderr }),
    });
    return { url: broker.mqttUrl };
  },
  usage: () => selfUsage(),
  async stop() {
    await broker?.close();
  },
});
