/**
 * Once per run: make sure Debian's Chromium is installed (never a downloaded
 * browser), build the page's assets (model, plugin) and the Vite production
 * bundle into dist/.
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'vite'
import { ensureTool } from '../../../scripts/redis.mjs'
import { buildAssets } from '../src/build-assets.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

export default async function setup(): Promise<void> {
  ensureTool('chromium', 'chromium', { purpose: 'the web-playground end-to-end test' })
  await buildAssets()
  await build({ root, logLevel: 'warn', configFile: join(root, 'vite.config.ts') })
}
