/**
 * End to end in real Chromium (Debian's, driven by playwright-core): the
 * production build served by `vite preview` on loopback; typing in the editor
 * shows a completion from the onnxruntime-web model and a diagnostic from the
 * Extism plugin.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type BrowserContext, chromium, type Page } from 'playwright-core'
import { type PreviewServer, preview } from 'vite'
import { afterAll, beforeAll, expect, it } from 'vitest'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
let server: PreviewServer
let context: BrowserContext
let profile: string
let page: Page
const pageErrors: string[] = []

beforeAll(async () => {
  server = await preview({
    root,
    configFile: join(root, 'vite.config.ts'),
    logLevel: 'warn',
    preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false },
  })
  profile = await mkdtemp(join(tmpdir(), 'aide-playground-chromium-'))
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  page = context.pages()[0] ?? (await context.newPage())
  page.on('pageerror', (error) => pageErrors.push(error.message))
})

afterAll(async () => {
  await context?.close()
  await new Promise<void>((resolve) =>
    server ? server.httpServer.close(() => resolve()) : resolve(),
  )
  if (profile) await rm(profile, { recursive: true, force: true })
})

it('completes a keyword from the ONNX model and shows diagnostics from both audit plugins', {
  timeout: 50_000,
}, async () => {
  const url = server.resolvedUrls!.local[0]!
  await page.goto(url)
  await page.waitForSelector('#status[data-ready="true"]', { timeout: 30_000 })
  expect(await page.textContent('#events')).toContain('model-load')

  const editor = page.locator('.cm-content')
  await editor.click()
  await page.keyboard.press('Control+End')
  await page.keyboard.type('func')
  const option = page.locator('.cm-tooltip-autocomplete li', { hasText: 'function' })
  await option.first().waitFor({ timeout: 15_000 })
  expect(await page.locator('.cm-tooltip-autocomplete li').first().textContent()).toContain(
    'function',
  )
  // Accept it (a click: CodeMirror ignores Enter for a moment after the list opens).
  await option.first().click()
  await page.waitForFunction(
    // Runs in the page (a string, so this Node-side file needs no DOM types).
    `document.querySelector('.cm-content')?.textContent?.endsWith('function')`,
  )

  await page.keyboard.type(' load() { const id = "AKIAIOSFODNN7EXAMPLE" }')
  const marked = page.locator('.cm-lintRange-error')
  await marked.first().waitFor({ timeout: 15_000 })
  expect(await marked.first().textContent()).toContain('AKIAIOSFODNN7EXAMPLE')
  // The AssemblyScript plugin flags a hard-coded password on a new line.
  expect(await page.textContent('#events')).not.toContain('hardcoded-secret')
  await page.keyboard.press('End')
  await page.keyboard.press('Enter')
  await page.keyboard.type('const password = "correct-horse-battery"')
  await page.waitForFunction(
    `document.querySelector('#events')?.textContent?.includes('hardcoded-secret')`,
    undefined,
    { timeout: 15_000 },
  )
  expect(await page.locator('.cm-lintRange-error').count()).toBeGreaterThanOrEqual(2)
  const events = await page.textContent('#events')
  expect(events).toContain('completion-serve')
  expect(events).toContain('aws-access-key')
  expect(pageErrors).toEqual([])
})
