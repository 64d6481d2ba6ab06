import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { defineConfig } from 'vitest/config'

/**
 * One vitest project per package, example, and the bench and docs folders, for
 * each that has a `test/` folder. Tests resolve workspace packages through the
 * `@aide/source` export condition, so they run against `src` without a build.
 * A project may build fixtures or start services once per run in
 * `test/global-setup.ts` (e.g. wasm plugins, Neovim, a Redis for the docs).
 */
function project(dir: string, name: string) {
  return {
    extends: true as const,
    test: {
      name,
      root: dir,
      include: ['test/**/*.test.ts'],
      ...(existsSync(join(dir, 'test', 'global-setup.ts'))
        ? { globalSetup: ['test/global-setup.ts'] }
        : {}),
    },
  }
}

const folders = (root: string) =>
  existsSync(root)
    ? readdirSync(root, { withFileTypes: true })
        .filter((entry) => entry.isDirectory() && existsSync(join(root, entry.name, 'test')))
        .map((entry) => entry.name)
    : []

const projects = [
  ...folders('packages').map((name) => project(join('packages', name), name)),
  ...folders('examples').map((name) => project(join('examples', name), `example:${name}`)),
  ...['bench', 'docs']
    .filter((dir) => existsSync(join(dir, 'test')))
    .map((dir) => project(dir, dir)),
]

export default defineConfig({
  resolve: { conditions: ['@aide/source'] },
  ssr: { resolve: { conditions: ['@aide/source'] } },
  test: {
    projects,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    env: { ORT_DISABLE_TELEMETRY: '1' },
  },
})
