import { InProcessBus } from '../../../../common/bus/in-process.ts';
import { eventBusContract } from '../../../contracts/event-bus.ts';

// The EventBus contract on the embedded bus (KafkaBus: tests/external/kafka-contracts.test.ts).
eventBusContract(
  'InProcessBus',
  async () => ({ bus: new InProcessBus({ redeliveryDelayMs: 1 }), joined: async () => undefined }),
  { timeoutMs: 5_000, quietMs: 30 },
);
