// The sentinel events the proxy follows: one table from the channel a sentinel publishes on to
// what it means for the proxy, and the parser of their messages. The subscription list is the
// table's keys. Message formats are sentinel.c's (sentinelEvent): "%@" events name an instance
// as `<type> <name> <ip> <port>` and, for a replica or a sentinel, add `@ <master> <ip> <port>`;
// +switch-master is `<master> <old ip> <old port> <new ip> <new port>`.

import { sameEndpoint } from "../conf/address.ts";

/** What an event means for the proxy. */
export type Meaning =
  /** The master moved: new writes go to the new address. */
  | "switch-master"
  /** A step of a failover of the master (published by the sentinel leading it). */
  | "failover"
  /** That sentinel gave up its failover; the master stays. */
  | "abort"
  /** The instance is down (subjectively or objectively), or up again. */
  | "down"
  | "up"
  /** Something about the master's replicas changed: ask again which are usable. */
  | "replicas";

export const EVENTS: Readonly<Record<string, Meaning>> = {
  "+switch-master": "switch-master",
  // A failover, in the order sentinel goes through it (the leader publishes these; the others
  // only see +switch-master once the leader has promoted a replica).
  "+try-failover": "failover",
  "+elected-leader": "failover",
  "+failover-state-select-slave": "failover",
  "+selected-slave": "failover",
  "+failover-state-send-slaveof-noone": "failover",
  "+failover-state-wait-promotion": "failover",
  "+promoted-slave": "failover",
  "+failover-state-reconf-slaves": "failover",
  "-failover-abort-not-elected": "abort",
  "-failover-abort-no-good-slave": "abort",
  "-failover-abort-slave-timeout": "abort",
  "+sdown": "down",
  "+odown": "down",
  "-sdown": "up",
  "-odown": "up",
  // A replica discovered, restarted, reconfigured, or reporting another role (an old master
  // that still calls itself master is no replica to read from).
  "+slave": "replicas",
  "+reboot": "replicas",
  "+convert-to-slave": "replicas",
  "+slave-reconf-done": "replicas",
  "+fix-slave-config": "replicas",
  "+role-change": "replicas",
  "-role-change": "replicas",
};

export const CHANNELS: readonly string[] = Object.keys(EVENTS);

/** A redis-server (or sentinel) as a sentinel names it. */
export interface Instance {
  readonly host: string;
  readonly port: number;
}

/** "host:port", IPv6 in brackets. */
export const instanceText = (i: Instance): string => (i.host.includes(":") ? `[${i.host}]:${i.port}` : `${i.host}:${i.port}`);

export const sameInstance = (a: Instance | null, b: Instance | null): boolean => a !== null && b !== null && sameEndpoint(a, b);

/** One parsed event. */
export interface SentinelEvent {
  readonly channel: string;
  readonly meaning: Meaning;
  /** The sentinel master name it is about. */
  readonly master: string;
  /** The instance it is about: "master", "slave" or "sentinel". */
  readonly type: string;
  readonly instance: Instance;
  /** +switch-master: the new master's address. */
  readonly to: Instance | null;
}

function instanceAt(words: readonly string[], at: number): Instance | null {
  const host = words[at];
  const port = Number(words[at + 1]);
  if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host, port };
}

/** The event published on `channel` with `message`, or null when the channel is not followed or
 *  the message does not have the shape sentinel gives it. */
export function parseEvent(channel: string, message: string): SentinelEvent | null {
  const meaning = EVENTS[channel];
  if (meaning === undefined) return null;
  const words = message.split(" ");
  if (meaning === "switch-master") {
    const from = instanceAt(words, 1);
    const to = instanceAt(words, 3);
    if (from === null || to === null || words[0] === "") return null;
    return { channel, meaning, master: words[0]!, type: "master", instance: from, to };
  }
  const type = words[0];
  const instance = instanceAt(words, 2);
  if (type === undefined || instance === null) return null;
  if (type === "master") return { channel, meaning, master: words[1]!, type, instance, to: null };
  if (words[4] !== "@" || words[5] === undefined) return null;
  return { channel, meaning, master: words[5], type, instance, to: null };
}
