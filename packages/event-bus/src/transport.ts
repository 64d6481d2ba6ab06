/**
 * The transport interface: what carries events between processes. The Redis
 * Streams transport (`@aide/event-bus/redis`) and the in-memory transport
 * (`@aide/event-bus/testing`) both implement it, and {@link bridge} connects
 * any of them to a bus.
 *
 * The contract is the one of a log with consumer groups: every group receives
 * every event, the consumers of one group share them, and delivery is at least
 * once (an event is acknowledged only after its handler resolved).
 */
import type { DeadlineOptions } from '@aide/core'

/** Options of {@link EventTransport.publish}. */
export interface TransportPublishOptions extends DeadlineOptions {
  /**
   * The event id. Defaults to a random UUID. Pass the same id when retrying a
   * publish whose outcome is unknown, so consumers can drop the duplicate.
   */
  id?: string
  /** The publishing node (a bridge sets it so it can skip its own events). */
  origin?: string
}

/** One event of {@link EventTransport.publishBatch}. */
export interface TransportBatchEvent<Events extends object = Record<string, unknown>> {
  /** The event type. */
  type: keyof Events & string
  /** The payload. */
  payload: Events[keyof Events]
  /** The event id (default: a random UUID). */
  id?: string
  /** The publishing node. */
  origin?: string
}

/** Where a published event went. */
export interface PublishedEvent {
  /** The event id (for de-duplication). */
  id: string
  /** The transport's id of the entry (a Redis stream entry id). */
  entryId: string
}

/** An event as a consumer receives it. */
export interface TransportEvent<Events extends object = Record<string, unknown>> {
  /** The event id chosen by the publisher; the same across redeliveries. */
  id: string
  /** The transport's id of the entry (a Redis stream entry id). */
  entryId: string
  /** The event type. */
  type: keyof Events & string
  /**
   * The payload, as the publisher's serializer wrote it. It crossed a process
   * boundary: validate it if the publisher is not trusted.
   */
  payload: Events[keyof Events]
  /** Publisher's clock time, in ms since the epoch. */
  publishedAt: number
  /** How many times this entry has been delivered to the group, this time included. */
  deliveryCount: number
  /** The publishing node, when the publisher set one. */
  origin: string | undefined
}

/**
 * Handles one event. Resolve to acknowledge it; throw or reject to have it
 * delivered again later. Throwing an `AideError` with code `E_INVALID_INPUT`
 * says the event itself is bad: it goes to the dead letters at once instead of
 * being retried.
 */
export type TransportHandler<Events extends object> = (
  event: TransportEvent<Events>,
  signal: AbortSignal,
) => void | PromiseLike<void>

/** What every transport's `consume` accepts (a transport may accept more). */
export interface TransportConsumeOptions<Events extends object> {
  /** Consumer group name: each group receives every event once; its consumers share them. */
  group: string
  /** This consumer's name, unique within the group. */
  consumer?: string
  /** Called for each event. */
  handler: TransportHandler<Events>
  /** Where a new group starts: `beginning` (every event still kept) or `new`. */
  startFrom?: 'beginning' | 'new'
  /** Handlers running at once (default 1: events are handled in order). */
  concurrency?: number
  /** Stops the consumer when aborted. */
  signal?: AbortSignal
}

/** A running consumer. Dispose to stop it; events it had not acknowledged stay pending for its group. */
export interface TransportConsumer {
  /** The consumer's name in its group. */
  readonly name: string
  /** Stops reading and aborts the signal given to running handlers. Idempotent. */
  dispose(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

/** A transport that carries events between processes. */
export interface EventTransport<Events extends object = Record<string, unknown>> {
  /**
   * Appends an event. Rejects with `E_INVALID_INPUT` for a payload the
   * serializer cannot carry, `E_TIMEOUT` / `E_CANCELLED` per the options and
   * `E_UNAVAILABLE` when the transport is unreachable.
   */
  publish<K extends keyof Events & string>(
    type: K,
    payload: Events[K],
    options?: TransportPublishOptions,
  ): Promise<PublishedEvent>
  /** Appends several events in order. Validates all before writing any. */
  publishBatch(
    events: ReadonlyArray<TransportBatchEvent<Events>>,
    options?: DeadlineOptions,
  ): Promise<PublishedEvent[]>
  /** Starts a consumer in a group (created if missing). */
  consume(
    options: TransportConsumeOptions<Events>,
    deadline?: DeadlineOptions,
  ): Promise<TransportConsumer>
  /**
   * Deletes a consumer group and its pending entries. Resolves false when it
   * did not exist. Bridges use it to remove the group of a node with a
   * generated name when they stop.
   */
  deleteGroup(group: string, options?: DeadlineOptions): Promise<boolean>
  /** Stops every consumer and releases connections. Idempotent. */
  dispose(): Promise<void>
}
