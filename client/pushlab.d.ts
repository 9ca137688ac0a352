// Type declarations for pushlab.js (docs/client.md).

/** A transport the client may use, best first. */
export type Transport = "ws" | "sse" | "long-poll" | "poll";

/** One published message. */
export interface Message {
  topic: string;
  /** The hub-wide id "E-N", also the cursor after this message. */
  id: string;
  /** The text of a text message; the bytes of a binary message, whatever
   *  the transport (a WebSocket's binary frame, base64 on SSE and polls). */
  data: string | Uint8Array;
}

/** Reported on every change of transport or state. */
export interface Status {
  transport: Transport;
  /** connecting → open; reconnecting (a working connection ended);
   *  failed (it never worked: the next transport is tried); closed. */
  state: "connecting" | "open" | "reconnecting" | "failed" | "closed";
  /** Why: "start", "upgrade refused or failed", "stream ended", … */
  reason: string;
  /** The cursor at that moment. */
  cursor: string | null;
  /** Date.now() when it happened. */
  at: number;
}

export interface SubscribeOptions {
  /** Resume after this id; "0" = everything still kept; default: from now on. */
  since?: string;
  /** Transports to use, best first. Default ["ws", "sse", "long-poll", "poll"]. */
  transports?: Transport[];
  /** Each message once, in id order. */
  onMessage?(m: Message): void;
  /** n messages after the cursor were evicted before they could be delivered. */
  onMissed?(n: number): void;
  /** The cursor belongs to another epoch (the server restarted): what follows
   *  starts from the oldest message the server keeps. */
  onReset?(): void;
  onStatus?(s: Status): void;
  /** ms an event stream may take to send its first byte (else: buffered). Default 5000. */
  firstByteTimeout?: number;
  /** ms without any byte (heartbeats included) before a stream is reopened. Default 45000. */
  stallTimeout?: number;
  /** Seconds a long poll is held. Default 25. */
  longPollTimeout?: number;
  /** ms between short polls. Default 2000. */
  pollInterval?: number;
  /** ms before a better transport that failed is tried again (doubles each time, jittered). Default 30000. */
  retryBetter?: number;
  /** Longest back-off between reconnects, ms. Default 30000. */
  maxDelay?: number;
  /** fetch credentials mode for the HTTP transports. Default "same-origin". */
  credentials?: RequestCredentials;
}

export interface Subscription {
  /** The last id delivered (or given by the server as the head). */
  readonly cursor: string | null;
  /** The transport in use (or last tried). */
  readonly transport: Transport | null;
  readonly state: Status["state"];
  close(): void;
}

export function subscribe(baseUrl: string, topics: string | string[], options?: SubscribeOptions): Subscription;

export interface PublishOptions {
  /** Sent as Authorization: Bearer TOKEN. */
  token?: string;
  credentials?: RequestCredentials;
}

/** Publishes one message: a string as text, bytes as a binary message
 *  (`Content-Type: application/octet-stream`). Resolves to the server's
 *  answer. Rejects on a non-2xx status. */
export function publish(
  baseUrl: string,
  topic: string,
  data: string | Uint8Array | ArrayBuffer | Blob,
  options?: PublishOptions,
): Promise<{ topic: string; id: string }>;
