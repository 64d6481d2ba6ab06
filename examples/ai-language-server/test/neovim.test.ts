import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { serverCommand, workspaceDir } from '../src/lsp-client.ts'

// Neovim 0.7 (Debian) API: vim.lsp.start_client + vim.lsp.buf_attach_client.
const script = `
local out = os.getenv('AIDE_NVIM_OUT')
local result = { diagnostics = {}, completion = {}, errors = {} }
local function finish()
  local file = io.open(out, 'w')
  file:write(vim.fn.json_encode(result))
  file:close()
  vim.cmd('qa!')
end
local ok, err = pcall(function()
  local client_id = vim.lsp.start_client({
    name = 'aide-lsp',
    cmd = vim.fn.json_decode(os.getenv('AIDE_NVIM_CMD')),
    root_dir = os.getenv('AIDE_NVIM_ROOT'),
    flags = { debounce_text_changes = 0 },
    on_exit = function(code) result.exit_code = code end,
  })
  vim.cmd('edit ' .. os.getenv('AIDE_NVIM_FILE'))
  local bufnr = vim.api.nvim_get_current_buf()
  vim.lsp.buf_attach_client(bufnr, client_id)
  vim.wait(40000, function() return #vim.diagnostic.get(bufnr) > 0 end, 50)
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    table.insert(result.diagnostics, { message = d.message, lnum = d.lnum, source = d.source })
  end
  local last = vim.api.nvim_buf_line_count(bufnr)
  vim.api.nvim_buf_set_lines(bufnr, last, last, false, { 'const discounted = applyDisc' })
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = { line = last, character = #'const discounted = applyDisc' },
  }
  local responses = vim.lsp.buf_request_sync(bufnr, 'textDocument/completion', params, 40000) or {}
  for _, response in pairs(responses) do
    if response.err then table.insert(result.errors, response.err.message) end
    local items = response.result and (response.result.items or response.result) or {}
    for _, item in ipairs(items) do table.insert(result.completion, item.label) end
  end
end)
if not ok then table.insert(result.errors, tostring(err)) end
finish()
`

describe('headless Neovim against the real server', () => {
  it('gets audit diagnostics and a completion', async () => {
    const nvim = process.env.AIDE_NVIM ?? 'nvim'
    const dir = mkdtempSync(join(tmpdir(), 'aide-nvim-'))
    try {
      const scriptPath = join(dir, 'client.lua')
      const outPath = join(dir, 'result.json')
      writeFileSync(scriptPath, script)
      const { command, args } = serverCommand()
      const env = {
        ...process.env,
        AIDE_NVIM_OUT: outPath,
        AIDE_NVIM_CMD: JSON.stringify([command, ...args]),
        AIDE_NVIM_ROOT: workspaceDir,
        AIDE_NVIM_FILE: join(workspaceDir, 'src', 'cart.ts'),
        AIDE_LSP_CACHE_DIR: join(dir, 'cache'),
        XDG_STATE_HOME: dir,
        XDG_DATA_HOME: dir,
        XDG_CACHE_HOME: dir,
      }
      await new Promise<void>((resolve, reject) => {
        execFile(
          nvim,
          ['--headless', '--clean', '-u', 'NONE', '-n', '-c', `luafile ${scriptPath}`],
          { env, timeout: 50_000 },
          (error) => (error ? reject(error) : resolve()),
        )
      })
      const result = JSON.parse(readFileSync(outPath, 'utf8')) as {
        diagnostics: Array<{ message: string; source: string }>
        completion: string[]
        errors: string[]
      }
      expect(result.errors).toEqual([])
      expect(result.diagnostics.map((d) => d.message)).toContain(
        'debugger statement left in code; remove it before committing',
      )
      expect(result.diagnostics.every((d) => d.source === 'aide-audit')).toBe(true)
      expect(result.completion.some((label) => label.startsWith('applyDiscount'))).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
