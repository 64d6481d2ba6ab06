/**
 * Builds the audit plugins shipped with @aide/plugins (their `dist/` is a
 * build output) before the service loads them. Idempotent and cheap when
 * they are up to date.
 */
import { buildShippedPlugins } from '../../../packages/plugins/scripts/build-plugins.mjs'

export default async function setup(): Promise<void> {
  await buildShippedPlugins()
}
