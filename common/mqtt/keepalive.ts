import type { MqttClient, Packet } from 'mqtt';

/**
 * Keeps a busy receiver connected: a PUBLISH handled after a PINGREQ counts as
 * the broker's answer.
 *
 * Why: mqtt.js 5 handles a connection's incoming packets one at a time, in
 * order, and a `handleMessage` that calls back late (backpressure: the edge's
 * batcher queue is full; the bridge waits for Kafka) holds every packet behind
 * it. Its keepalive sends a PINGREQ after `keepalive` seconds without an
 * acknowledgement and closes the connection ("Keepalive timeout") when no
 * PINGRESP is handled within another `keepalive / 2`, but a PINGRESP sits in
 * the queue behind the telemetry the broker sent before it. Under a sustained
 * overload it is never handled in time: the connection is closed every
 * 1.5 × keepalive (90 s by default), the broker redelivers every message the
 * receiver held, and throughput collapses (measured in the pipeline benchmark
 * with Mosquitto, BENCHMARKS.md; the same report upstream: mqttjs/MQTT.js#1935).
 *
 * What changes: while a PINGREQ is outstanding, every PUBLISH the client
 * handles reschedules the keepalive, as the PINGRESP would. PINGREQs are still
 * sent every `keepalive` (the broker's side of the keepalive is unchanged),
 * and a connection that hands over nothing for `keepalive / 2` after a PINGREQ
 * still times out — a dead broker is still found, a slow receiver is not
 * taken for one. Packets are "handled" in order, so this is evidence the
 * connection moves, not that the broker answered recently; the backlog that
 * can sit in front of a PINGRESP is bounded by the socket buffers and the
 * broker's in-flight window.
 *
 * Returns a function that removes the listeners.
 */
export function keepAliveWhileReceiving(client: MqttClient): () => void {
  let pingOutstanding = false;
  const onSend = (packet: Packet): void => {
    if (packet.cmd === 'pingreq') pingOutstanding = true;
  };
  const onReceive = (packet: Packet): void => {
    if (packet.cmd === 'pingresp') pingOutstanding = false;
    else if (packet.cmd === 'publish' && pingOutstanding) {
      pingOutstanding = false;
      client.reschedulePing(true);
    }
  };
  const onClose = (): void => {
    pingOutstanding = false;
  };
  client.on('packetsend', onSend);
  client.on('packetreceive', onReceive);
  client.on('close', onClose);
  return () => {
    client.off('packetsend', onSend);
    client.off('packetreceive', onReceive);
    client.off('close', onClose);
  };
}
