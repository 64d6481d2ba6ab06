// An aide plugin in AssemblyScript: reports TODO and FIXME comments.
// Input: the document text (the manifest's entry says `"input": "text"`).
// Output: a JSON array of diagnostics with zero-based lines and UTF-16
// characters (AssemblyScript strings are UTF-16, so string indexes are LSP
// characters).
import { Host } from '@extism/as-pdk'

// Replaces AssemblyScript's abort with a trap, so the host sees a failed call
// (wired with `--use abort=assembly/index/abortHandler`).
export function abortHandler(
  _message: string | null,
  _fileName: string | null,
  _line: u32,
  _column: u32,
): void {
  unreachable()
}

/** Escapes a string as a JSON string literal. */
function json(text: string): string {
  let out = '"'
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c == 34) out += '\\"'
    else if (c == 92) out += '\\\\'
    else if (c < 32) out += ' '
    else out += String.fromCharCode(c)
  }
  return out + '"'
}

function diagnostic(line: i32, start: i32, end: i32, tag: string, note: string): string {
  const severity = tag == 'FIXME' ? 'warning' : 'information'
  const range =
    '{"start":{"line":' +
    line.toString() +
    ',"character":' +
    start.toString() +
    '},"end":{"line":' +
    line.toString() +
    ',"character":' +
    end.toString() +
    '}}'
  return (
    '{"ruleId":' +
    json(tag == 'FIXME' ? 'fixme-comment' : 'todo-comment') +
    ',"severity":' +
    json(severity) +
    ',"message":' +
    json(tag + ': ' + (note.length > 0 ? note : '(no description)')) +
    ',"remediation":' +
    json('Finish the work or track it in an issue, then remove the comment.') +
    ',"range":' +
    range +
    ',"fixes":[]}'
  )
}

export function diagnostics(): i32 {
  const text = Host.inputString()
  const lines = text.split('\n')
  const tags: string[] = ['TODO', 'FIXME']
  let out = '['
  let count = 0
  for (let l = 0; l < lines.length; l++) {
    const line = lines[l]
    // Only tags inside a line comment count: find `//` first.
    const comment = line.indexOf('//')
    if (comment < 0) continue
    for (let t = 0; t < tags.length; t++) {
      const at = line.indexOf(tags[t], comment)
      if (at < 0) continue
      let noteStart = at + tags[t].length
      while (
        noteStart < line.length &&
        (line.charCodeAt(noteStart) == 58 || line.charCodeAt(noteStart) == 32)
      )
        noteStart++
      const note = line.substring(noteStart).trimEnd()
      if (count > 0) out += ','
      out += diagnostic(l, at, line.trimEnd().length, tags[t], note)
      count++
    }
  }
  Host.outputString(out + ']')
  return 0
}
