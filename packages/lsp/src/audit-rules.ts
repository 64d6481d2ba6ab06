/**
 * A diagnostics provider driven by line rules (a pattern, a message, an
 * optional quick fix), and the audit rules aide ships by default.
 */
import {
  assertFunction,
  assertObject,
  assertString,
  invalidInput,
  throwIfAborted,
} from '@aide/core'
import type { TextEdit } from 'vscode-languageserver-protocol'
import type { DiagnosticsProvider, DiagnosticWithFixes } from './providers.js'

/** One audit rule. */
export interface AuditRule {
  /** Stable id, reported as the diagnostic's `code`. */
  id: string
  /** What is wrong and what to do. */
  message: string
  /** Default `warning`. */
  severity?: 'error' | 'warning' | 'information' | 'hint'
  /** Matched against each line (the `g` flag is added). */
  pattern: RegExp
  /**
   * A fix for one match: the replacement of the matched text (`replacement`),
   * or of the whole line including its line break when `removeLine` is true.
   */
  fix?: (
    match: RegExpExecArray,
    line: string,
  ) => { title: string; replacement?: string; removeLine?: boolean }
}

/** The audit rules shipped by default. */
export const defaultAuditRules: readonly AuditRule[] = [
  {
    id: 'no-eval',
    message: 'eval() runs arbitrary code; parse the data (JSON.parse) or use a function instead',
    severity: 'error',
    pattern: /\beval\s*\(/,
  },
  {
    id: 'no-debugger',
    message: 'debugger statement left in code; remove it before committing',
    severity: 'warning',
    pattern: /^\s*debugger;?\s*$/,
    fix: () => ({ title: 'Remove the debugger statement', removeLine: true }),
  },
  {
    id: 'no-console-log',
    message: 'console.log left in code; use the logger or remove it',
    severity: 'warning',
    pattern: /^\s*console\.log\(.*\);?\s*$/,
    fix: () => ({ title: 'Remove the console.log call', removeLine: true }),
  },
  {
    id: 'no-var',
    message: 'var is function-scoped; use let or const',
    severity: 'information',
    pattern: /\bvar\s+/,
    fix: (match) => ({
      title: 'Replace var with let',
      replacement: match[0].replace('var', 'let'),
    }),
  },
]

/** Options of {@link createAuditDiagnosticsProvider}. */
export interface AuditProviderOptions {
  /** The rules (default {@link defaultAuditRules}). */
  rules?: readonly AuditRule[]
  /** `source` of the diagnostics. Default `aide-audit`. */
  source?: string
}

/** A diagnostics provider that runs line rules over the whole document. */
export function createAuditDiagnosticsProvider(
  options: AuditProviderOptions = {},
): DiagnosticsProvider {
  assertObject(options, 'options')
  const rules = options.rules ?? defaultAuditRules
  if (!Array.isArray(rules)) throw invalidInput('options.rules', 'must be an array of rules')
  rules.forEach((rule, index) => {
    assertObject(rule, `options.rules[${index}]`)
    assertString(rule.id, `options.rules[${index}].id`)
    assertString(rule.message, `options.rules[${index}].message`)
    if (!(rule.pattern instanceof RegExp))
      throw invalidInput(`options.rules[${index}].pattern`, 'must be a RegExp')
    if (rule.fix !== undefined) assertFunction(rule.fix, `options.rules[${index}].fix`)
  })
  const source = options.source ?? 'aide-audit'
  const compiled = rules.map((rule) => ({
    rule,
    pattern: new RegExp(
      rule.pattern.source,
      rule.pattern.flags.includes('g') ? rule.pattern.flags : `${rule.pattern.flags}g`,
    ),
  }))
  return {
    name: 'audit',
    async provideDiagnostics(document, { signal }) {
      const results: DiagnosticWithFixes[] = []
      const lines = document.text.split('\n')
      for (let lineNumber = 0; lineNumber < lines.length; lineNumber++) {
        if (lineNumber % 2000 === 0) throwIfAborted(signal, 'audit')
        const line = lines[lineNumber]!.replace(/\r$/, '')
        for (const { rule, pattern } of compiled) {
          pattern.lastIndex = 0
          for (let match = pattern.exec(line); match; match = pattern.exec(line)) {
            if (match[0].length === 0) pattern.lastIndex++
            const range = {
              start: { line: lineNumber, character: match.index },
              end: { line: lineNumber, character: match.index + match[0].length },
            }
            const diagnostic: DiagnosticWithFixes = {
              range,
              message: rule.message,
              severity: rule.severity ?? 'warning',
              code: rule.id,
              source,
            }
            const fix = rule.fix?.(match, line)
            if (fix) {
              const edit: TextEdit = fix.removeLine
                ? {
                    range: {
                      start: { line: lineNumber, character: 0 },
                      end:
                        lineNumber + 1 < lines.length
                          ? { line: lineNumber + 1, character: 0 }
                          : { line: lineNumber, character: line.length },
                    },
                    newText: '',
                  }
                : { range, newText: fix.replacement ?? '' }
              diagnostic.fixes = [{ title: fix.title, edits: [edit], isPreferred: true }]
            }
            results.push(diagnostic)
          }
        }
      }
      return results
    },
  }
}
