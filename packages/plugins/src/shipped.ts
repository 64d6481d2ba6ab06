/**
 * Where the plugins shipped with this package live once built
 * (`plugins/<name>/dist`, produced by `scripts/build-plugins.mjs`).
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Names of the plugins shipped with `@aide/plugins`. */
export type ShippedPlugin = 'security-audit' | 'aws-key-scan'

/**
 * The folder of a shipped plugin, ready for `host.load(dir)` or
 * `registry.install(dir)`. Both `src/` and `dist/` sit one level below the
 * package root, so the path is the same from source and from the build.
 */
export function shippedPluginsDir(name: ShippedPlugin): string {
  const here = typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url))
  return join(here, '..', 'plugins', name, 'dist')
}
