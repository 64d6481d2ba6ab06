/**
 * Size classes of the buffer pool. Every power-of-two range `[2^k, 2^(k+1))`
 * is split into 8 equal steps, so a request is rounded up by less than one
 * step: the space wasted is always under 1/8 (12.5%) of the request.
 */
import { assertNumber } from '@aide/core'

/** Largest size the size-class arithmetic supports (1 GiB). */
export const MAX_CLASS_SIZE = 2 ** 30

/** Steps per power of two; 8 keeps the waste under 12.5%. */
const STEPS_LOG2 = 3

/**
 * The capacity of the size class that serves a request of `size` bytes: the
 * smallest class size `>= size`. Sizes up to 8 are their own class.
 *
 * @param size - Requested bytes, an integer in `[1, 2^30]`.
 * @returns The class capacity in bytes.
 */
export function sizeClassOf(size: number): number {
  assertNumber(size, 'size', { integer: true, min: 1, max: MAX_CLASS_SIZE })
  return classSize(size)
}

/** Unchecked {@link sizeClassOf} for the hot path. */
export function classSize(size: number): number {
  if (size <= 8) return size
  const k = 31 - Math.clz32(size)
  const shift = k - STEPS_LOG2
  const step = 1 << shift
  return ((size + step - 1) >>> shift) << shift
}

/**
 * A dense index for a class capacity returned by {@link classSize}, so class
 * state can live in an array instead of a map. Capacities below 16 are their
 * own index; from 16 on, each power of two contributes 8 indices.
 */
export function classIndex(capacity: number): number {
  if (capacity < 16) return capacity
  const k = 31 - Math.clz32(capacity)
  return 16 + (k - 4) * 8 + ((capacity >>> (k - STEPS_LOG2)) - 8)
}

/** Number of distinct class indices up to {@link MAX_CLASS_SIZE}. */
export const CLASS_COUNT = classIndex(MAX_CLASS_SIZE) + 1
