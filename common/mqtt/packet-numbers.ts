import mqttPacket from 'mqtt-packet';

/**
 * mqtt-packet (the packet writer of mqtt.js and aedes) writes packet ids and
 * topic lengths from a cache of 65,536 two-byte Buffers, built on the first
 * packet a process writes: 6.6 MB of heap and ~10 MB of RSS in every process
 * that speaks MQTT, kept for its lifetime. Writing the two bytes instead costs
 * nothing measurable: 1,000,000 packets (PUBLISH and PUBACK in turn) to a
 * null stream took 1.8–2.5 s with the cache and 2.3–2.4 s without, two runs
 * each on this project's 2-core machine; so Driftline turns the cache
 * off. It is one switch per process (the module is shared by every client and
 * the broker), set when this module is first imported — before any packet is
 * written, because `common/mqtt/connect.ts`, `broker/src/broker.ts` and the
 * dashboard's `mqtt-source.ts` import it. BENCHMARKS.md, "What the edge's memory is".
 */
mqttPacket.writeToStream.cacheNumbers = false;
