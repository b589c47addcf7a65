// flush.ts's turn rules: a connection marked dirty is written once at its turn's end; a server
// connection's requests wait one more turn when the turn read two or more clients and the
// write is under 1 KB, and never longer; a larger write, or a turn that read one client, goes at
// once. Connections here only record when they were written (what they write is not flush.ts's
// business); a turn is one setImmediate, as the runtime runs flushAll.

import { expect, test } from "bun:test";
import { markDirty, markQueued, noteClientRead, type Queued } from "../../src/core/flush.ts";

class Conn implements Queued {
  dirty = false;
  writes = 0;
  constructor(readonly unwritten = 40) {}
  flush(): void {
    this.writes++;
  }
}

/** One event-loop turn: flushAll, scheduled before this, runs first. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The turn read two clients: a busy one. */
const twoClientReads = (): void => {
  noteClientRead();
  noteClientRead();
};

test("a turn that read one client writes its server connections at its end", async () => {
  const server = new Conn();
  noteClientRead();
  markQueued(server);
  expect(server.writes).toBe(0);
  await turn();
  expect(server.writes).toBe(1);
  expect(server.dirty).toBe(false);
});

test("a turn that read two clients holds a small server write for one more turn, and only one", async () => {
  const server = new Conn();
  const client = new Conn();
  twoClientReads();
  markQueued(server);
  markDirty(client);
  await turn();
  expect(client.writes).toBe(1);
  expect(server.writes).toBe(0);
  // The next turn is busy too: what was held goes anyway, with what joined it.
  twoClientReads();
  markQueued(server);
  await turn();
  expect(server.writes).toBe(1);
  await turn();
  expect(server.writes).toBe(1);
});

test("a busy turn writes a server connection holding 1 KB or more at once", async () => {
  const small = new Conn(1023);
  const large = new Conn(1024);
  twoClientReads();
  markQueued(small);
  markQueued(large);
  await turn();
  expect(large.writes).toBe(1);
  expect(small.writes).toBe(0);
  await turn();
  expect(small.writes).toBe(1);
});

test("a connection is written once per turn however often it is marked", async () => {
  const server = new Conn();
  const client = new Conn();
  for (let i = 0; i < 3; i++) {
    markQueued(server);
    markDirty(client);
  }
  await turn();
  expect(server.writes).toBe(1);
  expect(client.writes).toBe(1);
});
