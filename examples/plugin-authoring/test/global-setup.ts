/**
 * Compiles the example plugin once per test run (asc is slow on a busy
 * machine); the walk-through then finds it up to date. Step 1 of the script
 * is the same function.
 */
import { buildPlugin } from '../src/steps.js'

export default function setup(): void {
  buildPlugin()
}
