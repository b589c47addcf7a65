// A minimal request/reply client for set-up work (health probes and prefilling keys), not for
// measuring: it sends bytes and waits until the replies received so far satisfy a predicate.

import type { Socket } from "bun";

interface Pending {
  text: string;
  done: (text: string) => boolean;
  resolve: (text: string) => void;
  reject: (error: Error) => void;
}

export class WireClient {
  private pending: Pending | null = null;
  private readonly decoder = new TextDecoder();

  private constructor(private readonly socket: Socket<WireClient>) {}

  static async open(port: number): Promise<WireClient> {
    let client: WireClient | null = null;
    const socket = await Bun.connect<WireClient | null>({
      hostname: "127.0.0.1",
      port,
      data: null,
      socket: {
        data: (_s, chunk) => client?.received(chunk),
        close: () => client?.failed(new Error(`connection to ${port} closed`)),
        error: (_s, error) => client?.failed(error),
      },
    });
    client = new WireClient(socket as Socket<WireClient>);
    return client;
  }

  private received(chunk: Uint8Array): void {
    const pending = this.pending;
    if (pending === null) return;
    pending.text += this.decoder.decode(chunk, { stream: true });
    if (pending.done(pending.text)) {
      this.pending = null;
      pending.resolve(pending.text);
    }
  }

  private failed(error: Error): void {
    const pending = this.pending;
    this.pending = null;
    pending?.reject(error);
  }

  /** Sends `request` (all of it, waiting for drains) and resolves with the reply text once `done`. */
  async send(request: Uint8Array, done: (text: string) => boolean, timeoutMs = 10_000): Promise<string> {
    const reply = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => this.failed(new Error(`no complete reply within ${timeoutMs} ms`)), timeoutMs);
      this.pending = {
        text: "",
        done,
        resolve: (text) => (clearTimeout(timer), resolve(text)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      };
    });
    let sent = 0;
    while (sent < request.length) {
      const wrote = this.socket.write(request.subarray(sent));
      if (wrote < 0) throw new Error("write on a closed connection");
      sent += wrote;
      if (sent < request.length) await Bun.sleep(1);
    }
    return reply;
  }

  close(): void {
    this.pending = null;
    this.socket.end();
  }
}

/** Number of complete lines in `text`. */
export function lineCount(text: string): number {
  let lines = 0;
  for (let at = text.indexOf("\n"); at >= 0; at = text.indexOf("\n", at + 1)) lines++;
  return lines;
}
