/**
 * Sorts indices by an int32 stamp held in a typed array, for the lazily
 * ordered lists of the memory tier and of the window tuner: both collect the
 * entries accessed since their lists were last put in order, sort them by
 * the access count of their last access, and move them to their lists'
 * newest ends in that order. Insertion sort for a few, else a
 * least-significant-digit radix sort on the stamp minus the oldest, eight
 * bits a pass, so a flush stays linear in the entries it moves. Both sorts
 * are stable.
 */
export class StampSorter {
  #spare: Int32Array = new Int32Array(0)
  readonly #counts = new Int32Array(256)

  /**
   * Sorts `list[0..count)` by `stamps[list[i] * stride + offset]`, which lie
   * in `oldest..oldest + span`.
   */
  sort(
    list: Int32Array,
    count: number,
    stamps: Int32Array,
    stride: number,
    offset: number,
    oldest: number,
    span: number,
  ): void {
    if (count <= 32) {
      for (let i = 1; i < count; i++) {
        const index = list[i]!
        const stamp = stamps[index * stride + offset]!
        let j = i - 1
        while (j >= 0 && stamps[list[j]! * stride + offset]! > stamp) {
          list[j + 1] = list[j]!
          j--
        }
        list[j + 1] = index
      }
      return
    }
    if (this.#spare.length < count) this.#spare = new Int32Array(Math.max(count, list.length))
    const counts = this.#counts
    let from: Int32Array = list
    let to: Int32Array = this.#spare
    for (let shift = 0; shift < 32 && span >>> shift !== 0; shift += 8) {
      counts.fill(0)
      for (let i = 0; i < count; i++) {
        counts[((stamps[from[i]! * stride + offset]! - oldest) >>> shift) & 255]!++
      }
      let position = 0
      for (let digit = 0; digit < 256; digit++) {
        const size = counts[digit]!
        counts[digit] = position
        position += size
      }
      for (let i = 0; i < count; i++) {
        const index = from[i]!
        to[counts[((stamps[index * stride + offset]! - oldest) >>> shift) & 255]!++] = index
      }
      const swap = from
      from = to
      to = swap
    }
    if (from !== list) list.set(from.subarray(0, count))
  }
}
