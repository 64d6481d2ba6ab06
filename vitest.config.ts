import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { defineConfig } from 'vitest/config'

/**
 * One vitest project per package and example that has tests. Tests resolve
 * workspace packages through the `@aide/source` export condition, so they run
 * against `src` without a build.
 */
const roots = ['packages', 'examples']
const projects = roots.flatMap((root) =>
  existsSync(root)
    ? readdirSync(root, { withFileTypes: true })
        .filter((entry) => entry.isDirectory() && existsSync(join(root, entry.name, 'test')))
        .map((entry) => ({
          extends: true as const,
          test: {
            name: `${root === 'packages' ? '' : 'example:'}${entry.name}`,
            root: join(root, entry.name),
            include: ['test/**/*.test.ts'],
            // A package may build fixtures once per run (e.g. wasm plugins) in test/global-setup.ts.
            ...(existsSync(join(root, entry.name, 'test', 'global-setup.ts'))
              ? { globalSetup: ['test/global-setup.ts'] }
              : {}),
          },
        }))
    : [],
)

// The benchmark report renderer and the docs' code blocks have tests of their own.
for (const name of ['bench', 'docs']) {
  if (existsSync(join(name, 'test'))) {
    projects.push({
      extends: true as const,
      test: { name, root: name, include: ['test/**/*.test.ts'] },
    })
  }
}

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
