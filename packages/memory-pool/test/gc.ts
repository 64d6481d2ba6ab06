/**
 * Test helper: a real `gc()` without `--expose-gc` on the command line, and a
 * poll that forces collections until a FinalizationRegistry callback has run.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

setFlagsFromString('--expose-gc')
const collect = runInNewContext('gc') as () => void

/**
 * Collects garbage until `done()` is true, or throws after `timeoutMs`. Each
 * collection runs in a fresh task, after `done()` ran in an earlier one:
 * `WeakRef.deref()` keeps its target alive until the end of the current task.
 */
export async function collectUntil(done: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    await new Promise<void>((resolve) => setTimeout(resolve, 10))
    collect()
    await new Promise<void>((resolve) => setTimeout(resolve, 0))
    if (done()) return
    if (Date.now() > deadline)
      throw new Error('collectUntil: condition not met before the deadline')
  }
}
