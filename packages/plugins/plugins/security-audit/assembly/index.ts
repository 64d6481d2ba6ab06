// Security audit rules for JavaScript and TypeScript, compiled to an Extism
// plugin with AssemblyScript. Input: the document text. Output: JSON.
// Positions are zero-based lines and UTF-16 characters (AssemblyScript strings
// are UTF-16, so string indexes are LSP characters).
import { Host } from '@extism/as-pdk'

// Replaces AssemblyScript's abort: trap, so the host sees a failed call.
export function abortHandler(
  message: string | null,
  fileName: string | null,
  line: u32,
  column: u32,
): void {
  unreachable()
}

class Edit {
  constructor(
    public line: i32,
    public start: i32,
    public end: i32,
    public newText: string,
  ) {}
}

class Finding {
  fixTitle: string = ''
  fix: Edit | null = null
  constructor(
    public ruleId: string,
    public severity: string,
    public message: string,
    public remediation: string,
    public line: i32,
    public start: i32,
    public end: i32,
  ) {}
}

const SECRET_SUFFIXES: string[] = [
  'password',
  'passwd',
  'secret',
  'apikey',
  'accesskey',
  'privatekey',
  'secretkey',
  'authtoken',
  'token',
  'clientsecret',
  'accesstoken',
]
const PII_SUFFIXES: string[] = [
  'email',
  'emailaddress',
  'ssn',
  'socialsecuritynumber',
  'phone',
  'phonenumber',
  'creditcard',
  'cardnumber',
  'dateofbirth',
  'dob',
  'password',
  'passportnumber',
  'iban',
]
const SQL_VERBS: string[] = ['select ', 'insert ', 'update ', 'delete ']

function isIdentStart(c: i32): bool {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 36
}

function isIdentPart(c: i32): bool {
  return isIdentStart(c) || (c >= 48 && c <= 57)
}

function isSpace(c: i32): bool {
  return c == 32 || c == 9
}

function isQuote(c: i32): bool {
  return c == 34 || c == 39 || c == 96
}

// Lower case with `_` and `-` removed: `DB_Password` -> `dbpassword`.
function squash(word: string): string {
  return word.toLowerCase().replaceAll('_', '').replaceAll('-', '')
}

function endsWithAny(word: string, suffixes: string[]): bool {
  for (let i = 0; i < suffixes.length; i++) {
    if (word.endsWith(suffixes[i])) return true
  }
  return false
}

// `dbPassword` -> `DB_PASSWORD`.
function upperSnake(word: string): string {
  let out = ''
  for (let i = 0; i < word.length; i++) {
    const c = word.charCodeAt(i)
    if (c >= 65 && c <= 90 && i > 0) {
      const previous = word.charCodeAt(i - 1)
      if (previous >= 97 && previous <= 122) out += '_'
    }
    out += c == 45 ? '_' : String.fromCharCode(c)
  }
  return out.toUpperCase()
}

// Index just past the string literal opening at `start`, or -1 if it does not close on this line.
function literalEnd(line: string, start: i32): i32 {
  const quote = line.charCodeAt(start)
  let i = start + 1
  while (i < line.length) {
    const c = line.charCodeAt(i)
    if (c == 92) {
      i += 2
      continue
    }
    if (c == quote) return i + 1
    i++
  }
  return -1
}

function skipSpaces(line: string, from: i32): i32 {
  let i = from
  while (i < line.length && isSpace(line.charCodeAt(i))) i++
  return i
}

function checkSecrets(line: string, lineNumber: i32, out: Finding[]): void {
  const begin = line.indexOf('-----BEGIN ')
  if (begin >= 0 && line.indexOf('PRIVATE KEY-----', begin) > begin) {
    const end = line.indexOf('PRIVATE KEY-----', begin) + 16
    out.push(
      new Finding(
        'hardcoded-secret',
        'error',
        'A private key is embedded in the source.',
        'Remove the key, rotate it, and load it at run time from a secret store or a file outside the repository.',
        lineNumber,
        begin,
        end,
      ),
    )
  }
  let i = 0
  while (i < line.length) {
    const c = line.charCodeAt(i)
    if (isQuote(c) && !isSecretKeyQuote(line, i)) {
      const end = literalEnd(line, i)
      if (end < 0) return
      i = end
      continue
    }
    if (!isIdentStart(c) || (i > 0 && isIdentPart(line.charCodeAt(i - 1)))) {
      i++
      continue
    }
    let j = i
    while (j < line.length && isIdentPart(line.charCodeAt(j))) j++
    const name = line.substring(i, j)
    i = j
    if (!endsWithAny(squash(name), SECRET_SUFFIXES)) continue
    // name, optional closing quote of an object key, optional `: Type`, then `=` or `:`, then a literal.
    let k = j
    if (k < line.length && (line.charCodeAt(k) == 34 || line.charCodeAt(k) == 39)) k++
    k = skipSpaces(line, k)
    if (k >= line.length) continue
    let op = line.charCodeAt(k)
    if (op == 58) {
      // `name: Type = '...'` (a type annotation) or `name: '...'` (an object property).
      const afterColon = skipSpaces(line, k + 1)
      if (afterColon < line.length && isIdentStart(line.charCodeAt(afterColon))) {
        let t = afterColon
        while (t < line.length && isIdentPart(line.charCodeAt(t))) t++
        k = skipSpaces(line, t)
        if (k >= line.length || line.charCodeAt(k) != 61) continue
        op = 61
      }
    }
    if (op != 61 && op != 58) continue
    if (
      op == 61 &&
      k + 1 < line.length &&
      (line.charCodeAt(k + 1) == 61 || line.charCodeAt(k + 1) == 62)
    )
      continue
    const literalStart = skipSpaces(line, k + 1)
    if (literalStart >= line.length || !isQuote(line.charCodeAt(literalStart))) continue
    const literalStop = literalEnd(line, literalStart)
    if (literalStop < 0) continue
    const content = line.substring(literalStart + 1, literalStop - 1)
    if (content.length < 4 || content.indexOf('${') >= 0) continue
    const finding = new Finding(
      'hardcoded-secret',
      'error',
      'Hard-coded secret in `' + name + '`.',
      'Never commit credentials: read them from the environment or a secret manager, and rotate this one.',
      lineNumber,
      literalStart,
      literalStop,
    )
    const variable = upperSnake(name)
    finding.fixTitle = 'Read ' + variable + ' from the environment'
    finding.fix = new Edit(lineNumber, literalStart, literalStop, 'process.env.' + variable)
    out.push(finding)
    i = literalStop
  }
}

// A quote that opens an object key such as `"password": "..."`: let the identifier scan see the key.
function isSecretKeyQuote(line: string, at: i32): bool {
  const end = literalEnd(line, at)
  if (end < 0) return false
  const after = skipSpaces(line, end)
  return (
    after < line.length &&
    line.charCodeAt(after) == 58 &&
    endsWithAny(squash(line.substring(at + 1, end - 1)), SECRET_SUFFIXES)
  )
}

function checkSql(line: string, lineNumber: i32, out: Finding[]): void {
  let i = 0
  while (i < line.length) {
    if (!isQuote(line.charCodeAt(i))) {
      i++
      continue
    }
    const end = literalEnd(line, i)
    const content = (end < 0 ? line.substring(i + 1) : line.substring(i + 1, end - 1)).toLowerCase()
    let startsWithSql = false
    const trimmed = content.trimStart()
    for (let v = 0; v < SQL_VERBS.length; v++) {
      if (trimmed.startsWith(SQL_VERBS[v])) startsWithSql = true
    }
    if (startsWithSql) {
      const stop = end < 0 ? line.length : end
      const rest = line.substring(stop).trimStart()
      const isTemplate = line.charCodeAt(i) == 96 && content.indexOf('${') >= 0
      const concatenated =
        rest.startsWith('+') ||
        rest.startsWith('.concat(') ||
        line.substring(0, i).trimEnd().endsWith('+')
      if (isTemplate || concatenated) {
        let last = line.length
        while (
          last > i &&
          (isSpace(line.charCodeAt(last - 1)) ||
            line.charCodeAt(last - 1) == 59 ||
            line.charCodeAt(last - 1) == 13)
        )
          last--
        out.push(
          new Finding(
            'sql-concatenation',
            'error',
            'SQL query built by string concatenation or interpolation (SQL injection risk).',
            'Use a parameterized query: keep the SQL constant and pass values as parameters ($1 / ?) to the driver.',
            lineNumber,
            i,
            last,
          ),
        )
        return
      }
    }
    if (end < 0) return
    i = end
  }
}

function checkWeakHash(line: string, lower: string, lineNumber: i32, out: Finding[]): void {
  if (lower.indexOf('pass') < 0 && lower.indexOf('pwd') < 0) return
  const names: string[] = ['md5', 'sha1']
  for (let n = 0; n < names.length; n++) {
    const name = names[n]
    let at = lower.indexOf(name)
    while (at >= 0) {
      const before = at > 0 ? lower.charCodeAt(at - 1) : 32
      const after = at + name.length < lower.length ? lower.charCodeAt(at + name.length) : 32
      if (!isIdentPart(before) && !isIdentPart(after)) {
        out.push(
          new Finding(
            'weak-password-hash',
            'error',
            name.toUpperCase() +
              ' is used to hash a password; it is fast and broken for this purpose.',
            'Hash passwords with a slow, salted algorithm: scrypt (node:crypto), argon2 or bcrypt.',
            lineNumber,
            at,
            at + name.length,
          ),
        )
      }
      at = lower.indexOf(name, at + name.length)
    }
  }
}

function logCallStart(lower: string): i32 {
  const prefixes: string[] = ['console.', 'logger.', 'log.']
  for (let p = 0; p < prefixes.length; p++) {
    let at = lower.indexOf(prefixes[p])
    while (at >= 0) {
      if (at == 0 || !isIdentPart(lower.charCodeAt(at - 1))) {
        let j = at + prefixes[p].length
        while (j < lower.length && isIdentPart(lower.charCodeAt(j))) j++
        if (j < lower.length && lower.charCodeAt(j) == 40) return j + 1
      }
      at = lower.indexOf(prefixes[p], at + 1)
    }
  }
  return -1
}

function checkPiiLogs(line: string, lower: string, lineNumber: i32, out: Finding[]): void {
  const from = logCallStart(lower)
  if (from < 0) return
  let depth = 0
  let i = from
  while (i < line.length) {
    const c = line.charCodeAt(i)
    if (isQuote(c)) {
      const end = literalEnd(line, i)
      if (end < 0) return
      i = end
      continue
    }
    if (c == 123) depth++
    if (c == 125) depth--
    if (
      !isIdentStart(c) ||
      (i > 0 && (isIdentPart(line.charCodeAt(i - 1)) || line.charCodeAt(i - 1) == 46))
    ) {
      i++
      continue
    }
    // A member chain such as `user.profile.email`.
    let j = i
    while (j < line.length && (isIdentPart(line.charCodeAt(j)) || line.charCodeAt(j) == 46)) j++
    const chain = line.substring(i, j)
    const lastDot = chain.lastIndexOf('.')
    const last = lastDot >= 0 ? chain.substring(lastDot + 1) : chain
    const afterChain = skipSpaces(line, j)
    const isKey = afterChain < line.length && line.charCodeAt(afterChain) == 58
    if (!isKey && PII_SUFFIXES.includes(squash(last))) {
      const finding = new Finding(
        'pii-in-logs',
        'warning',
        'Personal data (`' + chain + '`) is written to a log.',
        'Do not log personal data: log an opaque id instead, or redact the value.',
        lineNumber,
        i,
        j,
      )
      let before = i - 1
      while (before >= 0 && isSpace(line.charCodeAt(before))) before--
      const previous = before >= 0 ? line.charCodeAt(before) : 0
      const next = afterChain < line.length ? line.charCodeAt(afterChain) : 0
      const shorthand =
        depth > 0 &&
        (previous == 123 || previous == 44) &&
        (next == 125 || next == 44) &&
        lastDot < 0
      finding.fixTitle = 'Redact `' + chain + '` from the log'
      finding.fix = new Edit(
        lineNumber,
        i,
        j,
        shorthand ? chain + ": '[REDACTED]'" : "'[REDACTED]'",
      )
      out.push(finding)
    }
    i = j
  }
}

function audit(text: string): Finding[] {
  const out: Finding[] = []
  const lines = text.split('\n')
  for (let n = 0; n < lines.length; n++) {
    let line = lines[n]
    if (line.endsWith('\r')) line = line.substring(0, line.length - 1)
    const lower = line.toLowerCase()
    checkSecrets(line, n, out)
    checkSql(line, n, out)
    checkWeakHash(line, lower, n, out)
    checkPiiLogs(line, lower, n, out)
  }
  return out
}

function json(value: string): string {
  let out = '"'
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c == 34) out += '\\"'
    else if (c == 92) out += '\\\\'
    else if (c == 10) out += '\\n'
    else if (c == 13) out += '\\r'
    else if (c == 9) out += '\\t'
    else if (c < 32) out += '\\u00' + (c < 16 ? '0' : '1') + '0123456789abcdef'.charAt(c & 15)
    else out += String.fromCharCode(c)
  }
  return out + '"'
}

function range(line: i32, start: i32, end: i32): string {
  return (
    '{"start":{"line":' +
    line.toString() +
    ',"character":' +
    start.toString() +
    '},"end":{"line":' +
    line.toString() +
    ',"character":' +
    end.toString() +
    '}}'
  )
}

function editsJson(edit: Edit): string {
  return (
    '[{"range":' +
    range(edit.line, edit.start, edit.end) +
    ',"newText":' +
    json(edit.newText) +
    '}]'
  )
}

export function diagnostics(): i32 {
  const findings = audit(Host.inputString())
  let out = '['
  for (let i = 0; i < findings.length; i++) {
    const f = findings[i]
    if (i > 0) out += ','
    out +=
      '{"ruleId":' +
      json(f.ruleId) +
      ',"severity":' +
      json(f.severity) +
      ',"message":' +
      json(f.message) +
      ',"remediation":' +
      json(f.remediation) +
      ',"range":' +
      range(f.line, f.start, f.end) +
      ',"fixes":['
    const fix = f.fix
    if (fix != null) out += '{"title":' + json(f.fixTitle) + ',"edits":' + editsJson(fix) + '}'
    out += ']}'
  }
  Host.outputString(out + ']')
  return 0
}

export function code_actions(): i32 {
  const findings = audit(Host.inputString())
  let out = '['
  let first = true
  for (let i = 0; i < findings.length; i++) {
    const f = findings[i]
    const fix = f.fix
    if (fix == null) continue
    if (!first) out += ','
    first = false
    out +=
      '{"title":' +
      json(f.fixTitle) +
      ',"kind":"quickfix","ruleId":' +
      json(f.ruleId) +
      ',"range":' +
      range(f.line, f.start, f.end) +
      ',"edits":' +
      editsJson(fix) +
      '}'
  }
  Host.outputString(out + ']')
  return 0
}
