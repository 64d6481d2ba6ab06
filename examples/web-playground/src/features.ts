/**
 * Features of the keyword model, shared by the asset build (Node) and the
 * page (browser): a word becomes a vector of hashed character bigrams, with a
 * start marker so the first letters weigh in, normalised to unit length.
 */

/** Length of a feature vector. */
export const FEATURES = 128

/** Words the model ranks: JavaScript/TypeScript keywords and common globals. */
export const VOCABULARY = [
  'function',
  'return',
  'const',
  'let',
  'var',
  'async',
  'await',
  'export',
  'import',
  'interface',
  'class',
  'extends',
  'implements',
  'constructor',
  'private',
  'public',
  'readonly',
  'static',
  'typeof',
  'instanceof',
  'undefined',
  'null',
  'true',
  'false',
  'throw',
  'catch',
  'finally',
  'switch',
  'default',
  'continue',
  'break',
  'while',
  'for',
  'if',
  'else',
  'new',
  'this',
  'console',
  'Promise',
  'process',
  'Object',
  'Array',
  'string',
  'number',
  'boolean',
  'unknown',
] as const

function hash(text: string): number {
  let h = 2166136261
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 16777619)
  }
  return (h >>> 0) % FEATURES
}

/** The unit-length bigram vector of a word (empty words give zeros). */
export function featuresOf(word: string): Float32Array {
  const vector = new Float32Array(FEATURES)
  const marked = `^${word.toLowerCase()}`
  for (let i = 0; i + 1 < marked.length; i++) vector[hash(marked.slice(i, i + 2))]! += 1
  let norm = 0
  for (const value of vector) norm += value * value
  if (norm > 0) for (let i = 0; i < FEATURES; i++) vector[i]! /= Math.sqrt(norm)
  return vector
}
