/**
 * `@aide/event-bus`: a typed in-process event bus, and {@link bridge}, which
 * connects it to a transport between processes. The Redis Streams transport
 * lives in `@aide/event-bus/redis`; test helpers and an in-memory transport in
 * `@aide/event-bus/testing`.
 *
 * @packageDocumentation
 */
export {
  type BridgeDisposeOptions,
  type BridgeOptions,
  type BridgeStats,
  bridge,
  type EventBridge,
} from './bridge.js'
export {
  type BatchEvent,
  createEventBus,
  type DeadLetter,
  type DisposeOptions,
  type EventBus,
  type EventBusOptions,
  type EventBusStats,
  type EventListener,
  type EventTypeStats,
  type OverflowPolicy,
  type PublishOptions,
  type SubscribeOptions,
  type SubscriberStats,
  type WaitForOptions,
  type WildcardPattern,
} from './bus.js'
export type { Serializer } from './serializer.js'
export type {
  EventTransport,
  PublishedEvent,
  TransportBatchEvent,
  TransportConsumeOptions,
  TransportConsumer,
  TransportEvent,
  TransportHandler,
  TransportPublishOptions,
} from './transport.js'
