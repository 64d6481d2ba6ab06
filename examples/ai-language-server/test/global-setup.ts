// Once per run: installs Neovim (Debian package) when missing, for the headless
// editor test, and builds the shipped audit plugins of @aide/plugins (idempotent).
import { buildShippedPlugins } from '../../../packages/plugins/scripts/build-plugins.mjs'
import { ensureTool } from '../../../scripts/redis.mjs'

export default async function setup(): Promise<void> {
  process.env.AIDE_NVIM = ensureTool('nvim', 'neovim', {
    purpose: 'the ai-language-server Neovim test',
  })
  await buildShippedPlugins()
}
