// Exact MQTT 3.1.1 packet sizes for the lab (PUBLISH, PUBACK, CONNECT, SUBSCRIBE, PINGREQ...): fixed header, remaining length, variable header (tested against mqtt-packet).

/** Bytes of the Remaining Length field for a value (MQTT 3.1.1 §2.2.3: 7 bits per byte, at most 4 bytes). */
export function remainingLengthBytes(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 268_435_455)
    throw new RangeError(`remaining length ${n} out of range`);
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

const packet = (remaining: number): number => 1 + remainingLengthBytes(remaining) + remaining;
const utf8Bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/** PUBLISH (§3.3): topic length + topic, packet identifier when QoS > 0, payload. */
export function publishBytes(topic: string, payloadBytes: number, qos: 0 | 1 = 1): number {
  return packet(2 + utf8Bytes(topic) + (qos > 0 ? 2 : 0) + payloadBytes);
}

/** PUBACK (§3.4), CONNACK (§3.2): 4 bytes. */
export const PUBACK_BYTES = 4;
export const CONNACK_BYTES = 4;
/** PINGREQ / PINGRESP (§3.12, §3.13): 2 bytes each. */
export const PING_BYTES = 2;

/** CONNECT (§3.1) with protocol level 4, clean session, username and password, no will. */
export function connectBytes(clientId: string, username: string, passwordBytes: number): number {
  const variableHeader = 2 + 4 + 1 + 1 + 2; // "MQTT", level, flags, keep alive
  const payload = 2 + utf8Bytes(clientId) + 2 + utf8Bytes(username) + 2 + passwordBytes;
  return packet(variableHeader + payload);
}

/** SUBSCRIBE (§3.8) to one filter, and its SUBACK (§3.9). */
export function subscribeBytes(filter: string): number {
  return packet(2 + 2 + utf8Bytes(filter) + 1);
}
export const SUBACK_ONE_BYTES = 5;
