/**
 * One websocket connection to the venue (docs/protocol.md): requests matched to their
 * responses by `id`, stream messages handed to listeners, and a new connection after a
 * lost one (with growing pauses), on which the page subscribes and logs in again.
 */

export class ApiError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }

  /** "CODE: message", as the page shows it. */
  toString(): string {
    return `${this.code}: ${this.message}`;
  }
}

export interface StreamMessage {
  channel: string;
  market?: string;
  [field: string]: unknown;
}

export type Status = "connecting" | "open" | "closed";

interface Pending {
  resolve: (result: unknown) => void;
  reject: (error: ApiError) => void;
}

const RETRY_MS = [500, 1000, 2000, 5000];

export class Connection {
  readonly url: string;
  status: Status = "connecting";
  onMessage: (message: StreamMessage) => void = () => {};
  /** Called on each (re)connection, before any queued request is sent. */
  onOpen: () => void = () => {};
  onStatus: (status: Status, detail: string) => void = () => {};
  private socket: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private retries = 0;
  private stopped = false;

  constructor(url: string) {
    this.url = url;
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  /** Close this connection and open a fresh one (a new session: logged out). */
  restart(): void {
    this.retries = 0;
    this.socket?.close(1000, "restart");
  }

  /** Send one request; resolves with its `result`, rejects with an `ApiError`. */
  call<T = unknown>(method: string, params?: object): Promise<T> {
    const socket = this.socket;
    if (socket === null || socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ApiError("DISCONNECTED", "not connected to the venue: try again in a moment"));
    }
    const id = this.nextId++;
    const frame = params === undefined ? { id, method } : { id, method, params };
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (result: unknown) => void, reject });
      socket.send(JSON.stringify(frame));
    });
  }

  private open(): void {
    this.setStatus("connecting", this.url);
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.retries = 0;
      this.setStatus("open", this.url);
      this.onOpen();
    };
    socket.onmessage = (event: MessageEvent<string>) => this.receive(event.data);
    socket.onclose = (event: CloseEvent) => {
      if (this.socket !== socket) {
        return;
      }
      this.socket = null;
      const reason = event.reason ? `${event.code} ${event.reason}` : `code ${event.code}`;
      for (const waiting of this.pending.values()) {
        waiting.reject(new ApiError("DISCONNECTED", `the connection closed (${reason})`));
      }
      this.pending.clear();
      if (this.stopped) {
        this.setStatus("closed", reason);
        return;
      }
      const pause = event.reason === "restart" ? 0 : RETRY_MS[Math.min(this.retries, RETRY_MS.length - 1)];
      this.retries += 1;
      this.setStatus("closed", `connection closed (${reason}); reconnecting`);
      window.setTimeout(() => this.open(), pause);
    };
  }

  private receive(text: string): void {
    const message = JSON.parse(text) as Record<string, unknown>;
    if (typeof message.channel === "string") {
      this.onMessage(message as StreamMessage);
      return;
    }
    const waiting = typeof message.id === "number" ? this.pending.get(message.id) : undefined;
    if (waiting === undefined) {
      return;
    }
    this.pending.delete(message.id as number);
    if (message.ok === true) {
      waiting.resolve(message.result);
    } else {
      const error = (message.error ?? {}) as { code?: string; message?: string };
      waiting.reject(new ApiError(error.code ?? "ERROR", error.message ?? "the request failed"));
    }
  }

  private setStatus(status: Status, detail: string): void {
    this.status = status;
    this.onStatus(status, detail);
  }
}
