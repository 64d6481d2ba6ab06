/**
 * Builds the shipped plugins and the WAT test fixtures once per test run.
 * Idempotent: outputs newer than their sources are kept.
 */
import { join } from 'node:path'
import { buildShippedPlugins, compileWatFolder, packageDir } from '../scripts/build-plugins.mjs'

export default async function setup(): Promise<void> {
  await buildShippedPlugins()
  await compileWatFolder(
    join(packageDir, 'test', 'fixtures'),
    join(packageDir, 'test', 'fixtures', 'build'),
  )
}
