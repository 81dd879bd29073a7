//! The TypeScript declarations wasm-bindgen cannot derive from the Rust signatures: the
//! options objects, the packets events carry, and the typed `on` overloads (merged into the
//! generated `MqttClient` class by declaration merging). They follow `options.rs` and
//! `objects.rs`; `tests/npm/smoke.mjs` type-checks a use of each.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
export type QoS = 0 | 1 | 2;

/** User properties (MQTT 5): a name maps to a value, or to several in order. */
export interface UserProperties { [name: string]: string | string[] }

/** Properties a publisher may set on a message (MQTT 5). */
export interface PublishProperties {
  payloadFormatIndicator?: boolean;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: string | Uint8Array;
  userProperties?: UserProperties;
}

export interface WillOptions {
  topic: string;
  payload?: string | Uint8Array;
  qos?: QoS;
  retain?: boolean;
  properties?: PublishProperties & { willDelayInterval?: number };
}

export interface ReconnectOptions {
  /** First wait after a lost connection, doubled on each failed attempt. Default 1000. */
  initialDelayMs?: number;
  /** Longest wait between attempts. Default 30000. */
  maxDelayMs?: number;
  /** Each wait is spread by up to ± this fraction (0 to 1). Default 0.25. */
  jitter?: number;
}

export interface ConnectProperties {
  sessionExpiryInterval?: number;
  receiveMaximum?: number;
  maximumPacketSize?: number;
  topicAliasMaximum?: number;
  requestResponseInformation?: boolean;
  requestProblemInformation?: boolean;
  userProperties?: UserProperties;
}

export interface ConnectOptions {
  /** Empty or absent: MQTT 5 brokers assign one; for 3.1.1 a random one is made. */
  clientId?: string;
  /** 4 (MQTT 3.1.1) or 5 (MQTT 5.0, the default). */
  protocolVersion?: 4 | 5;
  /** Start a clean session on the first connection (default true). */
  clean?: boolean;
  /** Keep alive in seconds (default 60; 0 turns it off). */
  keepalive?: number;
  username?: string;
  password?: string | Uint8Array;
  will?: WillOptions;
  /** Reconnect with exponential backoff and jitter (the default), or not (false). */
  reconnect?: ReconnectOptions | boolean;
  properties?: ConnectProperties;
  /** Milliseconds to wait for CONNACK and for PINGRESP (default 10000). */
  connectTimeout?: number;
  /** Messages that may wait while offline (default 1000). */
  queueLimit?: number;
  /**
   * MQTT 5: publish through topic aliases, up to the broker's Topic Alias Maximum, assigned
   * per connection to topics in the order first published (default false).
   */
  autoAssignTopicAlias?: boolean;
}

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
  properties?: PublishProperties;
}

export interface SubscribeOptions {
  qos?: QoS;
  /** No local (MQTT 5): not sent our own messages. */
  nl?: boolean;
  /** Retain as published (MQTT 5). */
  rap?: boolean;
  /** Retain handling (MQTT 5): 0 send retained, 1 only for a new subscription, 2 never. */
  rh?: 0 | 1 | 2;
  properties?: { subscriptionIdentifier?: number; userProperties?: UserProperties };
}

/** One filter's outcome: the granted QoS, or a failure reason code (128 and above). */
export interface Granted { topic: string; qos: number }

export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Uint8Array;
  userProperties?: UserProperties;
  subscriptionIdentifier?: number | number[];
}

/** A received PUBLISH. */
export interface PublishPacket {
  cmd: "publish";
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  messageId?: number;
  properties: MessageProperties;
}

/** What `client.messages(filter)` yields. */
export type Message = PublishPacket;

export interface ConnackPacket {
  cmd: "connack";
  sessionPresent: boolean;
  reasonCode: number;
  properties: {
    sessionExpiryInterval?: number;
    receiveMaximum?: number;
    maximumQoS?: QoS;
    retainAvailable?: boolean;
    maximumPacketSize?: number;
    assignedClientIdentifier?: string;
    topicAliasMaximum?: number;
    reasonString?: string;
    userProperties?: UserProperties;
    wildcardSubscriptionAvailable?: boolean;
    subscriptionIdentifiersAvailable?: boolean;
    sharedSubscriptionAvailable?: boolean;
    serverKeepAlive?: number;
    responseInformation?: string;
    serverReference?: string;
  };
}

export interface DisconnectPacket { cmd: "disconnect"; reasonCode: number }

/** Errors carry the broker's reason code when there is one. */
export interface MqttError extends Error { reasonCode?: number }

export interface MqttClientEvents {
  connect: (connack: ConnackPacket) => void;
  message: (topic: string, payload: Uint8Array, packet: PublishPacket) => void;
  reconnect: () => void;
  offline: () => void;
  close: () => void;
  disconnect: (packet: DisconnectPacket) => void;
  error: (error: MqttError) => void;
  end: () => void;
}

export interface MqttClient {
  on<E extends keyof MqttClientEvents>(event: E, handler: MqttClientEvents[E]): void;
  once<E extends keyof MqttClientEvents>(event: E, handler: MqttClientEvents[E]): void;
  off<E extends keyof MqttClientEvents>(event: E, handler: MqttClientEvents[E]): void;
}
"#;
