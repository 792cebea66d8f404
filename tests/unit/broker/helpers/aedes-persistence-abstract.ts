import { createRequire } from 'node:module';
import { test } from 'node:test';
import { BoundedQueuePersistence } from '../../../../broker/src/persistence.ts';

/**
 * aedes-persistence's own conformance suite (its `abstract.js`, every
 * persistence plugin runs it) against the broker's bounded persistence, with
 * a bound above anything the suite enqueues. Run with `node --import tsx --test`
 * by tests/unit/broker/persistence.test.ts.
 */
const require = createRequire(import.meta.url);
const abstract = require('aedes-persistence/abstract.js') as (opts: unknown) => void;

abstract({
  test,
  persistence: () => new BoundedQueuePersistence({ maxQueuedPerClient: 65_535 }),
  testAsync: true,
});
