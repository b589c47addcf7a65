// What the kernel knows about test processes, read from /proc (Linux): children of a process,
// listening sockets on a port, which process holds the proxy side of a client connection, and
// CPU time; bytes waiting unread in the sockets of a port (a stopped backend's backlog). Used by
// the workers suites (which worker served a client?), the resilience suites and bench/workers.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";

const TCP_TABLES = ["/proc/net/tcp", "/proc/net/tcp6"];
const TCP_LISTEN = "0A";
const TCP_ESTABLISHED = "01";

/** Fields of /proc/<pid>/stat after the command name (field 3 onwards), or null once gone. */
function statFields(pid: number): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "latin1");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** Pids whose parent is `pid`, ascending. */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields !== null && Number(fields[1]) === pid) children.push(Number(entry));
  }
  return children.sort((a, b) => a - b);
}

/** True while `pid` exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const fields = statFields(pid);
  return fields !== null && fields[0] !== "Z";
}

/** utime + stime of `pid` in clock ticks (100 per second on Linux), or 0 once it is gone. */
export function cpuTicks(pid: number): number {
  const fields = statFields(pid);
  return fields === null ? 0 : Number(fields[11]) + Number(fields[12]);
}

interface TcpEntry {
  readonly localPort: number;
  readonly remotePort: number;
  readonly state: string;
  readonly inode: string;
  /** Bytes received and not read by the socket's owner yet. */
  readonly rxQueue: number;
  /** The kernel timer running on the socket: 0 none, 1 retransmit, 2 keepalive, ... */
  readonly timer: number;
}

function tcpEntries(): TcpEntry[] {
  const entries: TcpEntry[] = [];
  for (const table of TCP_TABLES) {
    let text: string;
    try {
      text = readFileSync(table, "latin1");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      entries.push({
        localPort: parseInt(f[1]!.split(":")[1]!, 16),
        remotePort: parseInt(f[2]!.split(":")[1]!, 16),
        state: f[3]!,
        inode: f[9]!,
        rxQueue: parseInt(f[4]!.split(":")[1]!, 16),
        timer: parseInt(f[5]!.split(":")[0]!, 16),
      });
    }
  }
  return entries;
}

/** How many sockets listen on TCP `port` (one per worker with SO_REUSEPORT). */
export function listenerCount(port: number): number {
  return tcpEntries().filter((e) => e.state === TCP_LISTEN && e.localPort === port).length;
}

/** Bytes waiting unread in the established connections accepted on local TCP `port` (e.g. a frozen backend's). */
export function unreadBytes(port: number): number {
  return tcpEntries()
    .filter((e) => e.state === TCP_ESTABLISHED && e.localPort === port)
    .reduce((sum, e) => sum + e.rxQueue, 0);
}

/** The timers of the established connections to remote TCP `port` (2: SO_KEEPALIVE's). */
export function timersTo(port: number): number[] {
  return tcpEntries()
    .filter((e) => e.state === TCP_ESTABLISHED && e.remotePort === port)
    .map((e) => e.timer);
}

/** The same for the connections accepted on local TCP `port` (a listener's clients). */
export function timersOn(port: number): number[] {
  return tcpEntries()
    .filter((e) => e.state === TCP_ESTABLISHED && e.localPort === port)
    .map((e) => e.timer);
}

/** Socket inodes open in `pid`. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/**
 * Which of `candidates` holds the accepted side of the connection from local port `clientPort`
 * to `serverPort` (the proxy's listen port), or null when none does.
 */
export function connectionOwner(serverPort: number, clientPort: number, candidates: readonly number[]): number | null {
  const entry = tcpEntries().find(
    (e) => e.state === TCP_ESTABLISHED && e.localPort === serverPort && e.remotePort === clientPort,
  );
  if (entry === undefined) return null;
  return candidates.find((pid) => socketInodes(pid).has(entry.inode)) ?? null;
}

/** Which of `candidates` holds the listening unix socket bound to `path`, or null. */
export function unixListenerOwner(path: string, candidates: readonly number[]): number | null {
  const UNIX_LISTENING = "00010000"; // __SO_ACCEPTCON in /proc/net/unix's Flags
  const inodes = new Set<string>();
  for (const line of readFileSync("/proc/net/unix", "latin1").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[7] === path && f[3] === UNIX_LISTENING) inodes.add(f[6]!);
  }
  return candidates.find((pid) => [...socketInodes(pid)].some((inode) => inodes.has(inode))) ?? null;
}

/** One variable of `pid`'s environment (as it was started), or undefined. */
export function environOf(pid: number, name: string): string | undefined {
  try {
    const vars = readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
    const entry = vars.find((v) => v.startsWith(`${name}=`));
    return entry?.slice(name.length + 1);
  } catch {
    return undefined;
  }
}
