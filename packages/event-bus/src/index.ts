/**
 * `@aide/event-bus`: a typed in-process event bus. The Redis Streams transport
 * lives in `@aide/event-bus/redis`.
 *
 * @packageDocumentation
 */
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
