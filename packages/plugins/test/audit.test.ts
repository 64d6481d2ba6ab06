import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createPluginHost,
  type PluginDiagnostic,
  type PluginHost,
  shippedPluginsDir,
  type TextDocument,
} from '../src/index.js'
import { positionOf } from './helpers.js'

let host: PluginHost

beforeAll(async () => {
  host = createPluginHost({ hostApiVersion: '1.0.0', limits: { timeoutMs: 10_000 } })
  await host.load(shippedPluginsDir('security-audit'))
  await host.load(shippedPluginsDir('aws-key-scan'))
})

afterAll(async () => {
  await host.dispose()
})

const doc = (text: string, languageId = 'typescript'): TextDocument => ({
  uri: 'file:///src/app.ts',
  languageId,
  text,
})

async function diagnose(text: string, languageId?: string): Promise<PluginDiagnostic[]> {
  const result = await host.runDiagnostics(doc(text, languageId))
  expect(result.failures).toEqual([])
  return result.diagnostics
}

function rangeOf(text: string, needle: string, after?: string) {
  const start = positionOf(text, needle, after)
  return { start, end: { line: start.line, character: start.character + needle.length } }
}

/** Applies LSP edits (single-line ranges) to a text. */
function apply(
  text: string,
  edits: Array<{
    range: { start: { line: number; character: number }; end: { character: number } }
    newText: string
  }>,
) {
  const lines = text.split('\n')
  for (const edit of [...edits].sort((a, b) => b.range.start.character - a.range.start.character)) {
    const line = lines[edit.range.start.line]!
    lines[edit.range.start.line] =
      line.slice(0, edit.range.start.character) +
      edit.newText +
      line.slice(edit.range.end.character)
  }
  return lines.join('\n')
}

describe('shipped audit rules', () => {
  it('finds hard-coded secrets and offers an environment-variable fix', async () => {
    const text = [
      'const dbPassword = "hunter2-but-longer"',
      "export const apiKey: string = 'sk_live_51HxYz'",
      'const settings = { "client_secret": "abc123def456", retries: 3 }',
      'const pem = "-----BEGIN RSA PRIVATE KEY-----"',
    ].join('\n')
    const found = await diagnose(text)
    expect(found.map((d) => [d.ruleId, d.severity, d.source])).toEqual([
      ['hardcoded-secret', 'error', 'aide.security-audit'],
      ['hardcoded-secret', 'error', 'aide.security-audit'],
      ['hardcoded-secret', 'error', 'aide.security-audit'],
      ['hardcoded-secret', 'error', 'aide.security-audit'],
    ])
    expect(found[0]!.range).toEqual(rangeOf(text, '"hunter2-but-longer"'))
    expect(found[0]!.remediation).toMatch(/environment/)
    expect(found[0]!.fixes[0]!.title).toBe('Read DB_PASSWORD from the environment')
    expect(apply(text, found[0]!.fixes[0]!.edits).split('\n')[0]).toBe(
      'const dbPassword = process.env.DB_PASSWORD',
    )
    expect(found[1]!.fixes[0]!.edits[0]!.newText).toBe('process.env.API_KEY')
    expect(found[2]!.range).toEqual(rangeOf(text, '"abc123def456"'))
    expect(found[3]!.fixes).toEqual([])
  })

  it('finds SQL built by concatenation or interpolation', async () => {
    const text = [
      'db.query("SELECT * FROM users WHERE id = " + userId)',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the audited source contains a template literal
      "const q = `DELETE FROM orders WHERE ref = '${ref}'`",
      "db.run('UPDATE accounts SET balance = ' + amount + ' WHERE id = 1')",
    ].join('\n')
    const found = await diagnose(text)
    expect(found.map((d) => [d.ruleId, d.range.start.line])).toEqual([
      ['sql-concatenation', 0],
      ['sql-concatenation', 1],
      ['sql-concatenation', 2],
    ])
    expect(found[0]!.range.start).toEqual(positionOf(text, '"SELECT'))
    expect(found[0]!.remediation).toMatch(/parameterized/)
  })

  it('finds md5 and sha1 used for passwords', async () => {
    const text = [
      "const hash = crypto.createHash('md5').update(password).digest('hex')",
      'const stored = sha1(user.passwd)',
    ].join('\n')
    const found = await diagnose(text)
    expect(found.map((d) => d.ruleId)).toEqual(['weak-password-hash', 'weak-password-hash'])
    expect(found[0]!.range).toEqual(rangeOf(text, 'md5'))
    expect(found[1]!.range).toEqual(rangeOf(text, 'sha1'))
    expect(found[0]!.message).toMatch(/MD5/)
  })

  it('finds personal data written to logs and offers a redaction', async () => {
    const text = [
      "console.log('signed up', user.email)",
      "logger.info('contact', { phone, userId })",
      "log.warn('card rejected: ' + payment.creditCard)",
    ].join('\n')
    const found = await diagnose(text)
    expect(found.map((d) => [d.ruleId, d.severity])).toEqual([
      ['pii-in-logs', 'warning'],
      ['pii-in-logs', 'warning'],
      ['pii-in-logs', 'warning'],
    ])
    expect(found[0]!.range).toEqual(rangeOf(text, 'user.email'))
    expect(apply(text, found[0]!.fixes[0]!.edits).split('\n')[0]).toBe(
      "console.log('signed up', '[REDACTED]')",
    )
    expect(apply(text, found[1]!.fixes[0]!.edits).split('\n')[1]).toBe(
      "logger.info('contact', { phone: '[REDACTED]', userId })",
    )
  })

  it('finds AWS access key ids in any language, with UTF-16 positions', async () => {
    const text = '# config 😀\naws_key = "AKIAIOSFODNN7EXAMPLE"\nnot_a_key = "AKIAshort"'
    const found = await diagnose(text, 'python')
    expect(found.map((d) => [d.ruleId, d.source])).toEqual([
      ['aws-access-key', 'aide.aws-key-scan'],
    ])
    expect(found[0]!.range).toEqual(rangeOf(text, 'AKIAIOSFODNN7EXAMPLE'))
    const emoji = await diagnose('const k = "😀AKIAIOSFODNN7EXAMPLE"', 'typescript')
    const aws = emoji.find((d) => d.ruleId === 'aws-access-key')!
    expect(aws.range.start).toEqual({ line: 0, character: 13 })
  })

  it('stays quiet on clean code', async () => {
    const clean = [
      "import { scrypt, randomBytes, createHash } from 'node:crypto'",
      'const password = process.env.DB_PASSWORD',
      'const apiKey: string = config.get("apiKey")',
      "const passwordPolicy = 'strict'",
      'if (token === expected) accept()',
      "db.query('SELECT * FROM users WHERE id = $1', [userId])",
      'const sql = `SELECT name FROM users`',
      "const digest = createHash('sha256').update(fileContents).digest('hex')",
      'scrypt(password, randomBytes(16), 64, done)',
      "logger.info('login ok', { userId })",
      "console.log('email sent')",
      'const email = form.email',
      "const tokenizer = 'whitespace'",
    ].join('\n')
    expect(await diagnose(clean)).toEqual([])
  })

  it('serves code actions for a range through the code-action entry', async () => {
    const text = [
      'const a = 1',
      'const dbPassword = "hunter2-but-longer"',
      'console.log(user.email)',
    ].join('\n')
    const onSecret = await host.runCodeActions(doc(text), rangeOf(text, 'hunter2'))
    expect(onSecret.failures).toEqual([])
    expect(onSecret.actions.map((a) => [a.title, a.kind, a.ruleId, a.source])).toEqual([
      [
        'Read DB_PASSWORD from the environment',
        'quickfix',
        'hardcoded-secret',
        'aide.security-audit',
      ],
    ])
    const onFirstLine = await host.runCodeActions(doc(text), rangeOf(text, 'const a'))
    expect(onFirstLine.actions).toEqual([])
  })

  it('runDiagnostics({ plugins }) runs only the named plugins', async () => {
    const text = [
      'const dbPassword = "hunter2-but-longer"',
      'const k = "AKIAIOSFODNN7EXAMPLE"',
    ].join('\n')
    const sources = (found: PluginDiagnostic[]) => [...new Set(found.map((d) => d.source))].sort()
    const all = await host.runDiagnostics(doc(text))
    expect(all.failures).toEqual([])
    expect(sources(all.diagnostics)).toEqual(['aide.aws-key-scan', 'aide.security-audit'])
    const aws = await host.runDiagnostics(doc(text), { plugins: ['aide.aws-key-scan'] })
    expect(aws.failures).toEqual([])
    expect(aws.diagnostics.map((d) => [d.ruleId, d.source])).toEqual([
      ['aws-access-key', 'aide.aws-key-scan'],
    ])
    const audit = await host.runDiagnostics(doc(text), { plugins: ['aide.security-audit'] })
    expect(audit.failures).toEqual([])
    expect(sources(audit.diagnostics)).toEqual(['aide.security-audit'])
    expect(audit.diagnostics.map((d) => d.ruleId)).toContain('hardcoded-secret')
    expect(await host.runDiagnostics(doc(text), { plugins: [] })).toEqual({
      diagnostics: [],
      failures: [],
    })
  })

  it('skips language-specific rules for other languages', async () => {
    const found = await diagnose('password = "hunter2-but-longer"', 'python')
    expect(found).toEqual([])
  })
})
