// Installs Neovim (Debian package) once per run when it is missing, for the headless editor test.
import { ensureTool } from '../../../scripts/redis.mjs'

export default function setup(): void {
  process.env.AIDE_NVIM = ensureTool('nvim', 'neovim', {
    purpose: 'the ai-language-server Neovim test',
  })
}
