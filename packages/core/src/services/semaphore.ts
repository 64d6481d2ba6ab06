/**
 * A counting semaphore whose waiters are served by priority (higher first),
 * then in arrival order. Used to budget concurrent service initialisations.
 */
export class PrioritySemaphore {
  #available: number
  #waiters: Array<{ priority: number; seq: number; grant: () => void }> = []
  #seq = 0

  constructor(readonly capacity: number) {
    this.#available = capacity
  }

  /** Slots currently taken. */
  get inUse(): number {
    return this.capacity - this.#available
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length
  }

  /** Takes a slot at once if one is free. */
  tryAcquire(): boolean {
    if (this.#available > 0 && this.#waiters.length === 0) {
      this.#available--
      return true
    }
    return false
  }

  /** Resolves when a slot is granted. */
  acquire(priority = 0): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve()
    return new Promise<void>((grant) => {
      const waiter = { priority, seq: this.#seq++, grant }
      // Sorted insert: highest priority first, then arrival order.
      let index = this.#waiters.length
      while (index > 0 && this.#waiters[index - 1]!.priority < priority) index--
      this.#waiters.splice(index, 0, waiter)
    })
  }

  /** Returns a slot, handing it to the best waiter if any. */
  release(): void {
    const next = this.#waiters.shift()
    if (next) next.grant()
    else this.#available++
  }
}
