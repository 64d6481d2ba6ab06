/**
 * A small code tokenizer for the local completion model: identifiers,
 * numbers, multi-character operators, single punctuation characters and
 * whitespace (a space, or a newline plus its indentation) are tokens.
 * Decoding concatenates tokens, so in-vocabulary text round-trips exactly.
 */
import { assertNumber, assertString, invalidInput } from '@aide/core'

/** Token id of out-of-vocabulary text. */
export const UNKNOWN_ID = 0
/** Token id used to left-pad a context shorter than the model's window. */
export const PAD_ID = 1

const SPECIAL = ['<unk>', '<pad>']
const TOKEN =
  /\n[ \t]*|[ \t]+|[A-Za-z_$][\w$]*|\d+(?:\.\d+)?|=>|===|!==|\.\.\.|\?\?=|\*\*|==|!=|<=|>=|&&|\|\||\?\?|\?\.|\+\+|--|\+=|-=|[^\s\w]/g

/** Splits text into token strings (whitespace normalised: tabs become two spaces, runs of spaces one). */
export function splitTokens(text: string): string[] {
  const out: string[] = []
  for (const match of text.matchAll(TOKEN)) {
    let token = match[0]
    if (token.startsWith('\n')) token = token.replace(/\t/g, '  ')
    else if (token[0] === ' ' || token[0] === '\t') token = ' '
    out.push(token)
  }
  return out
}

/** Serialised form of a {@link CodeTokenizer}. */
export interface TokenizerJSON {
  kind: 'aide-code-tokenizer'
  version: 1
  vocabulary: string[]
}

/** Maps code text to token ids and back. */
export class CodeTokenizer {
  private readonly ids = new Map<string, number>()

  /** @param vocabulary - Token strings by id; ids 0 and 1 must be `<unk>` and `<pad>`. */
  constructor(readonly vocabulary: readonly string[]) {
    if (!Array.isArray(vocabulary) || vocabulary[0] !== '<unk>' || vocabulary[1] !== '<pad>') {
      throw invalidInput('vocabulary', 'must be an array starting with "<unk>", "<pad>"')
    }
    vocabulary.forEach((token, id) => {
      if (typeof token !== 'string') throw invalidInput(`vocabulary[${id}]`, 'must be a string')
      this.ids.set(token, id)
    })
  }

  /** Builds a vocabulary of the `size` most frequent tokens (ties broken alphabetically, so it is deterministic). */
  static train(texts: Iterable<string>, size: number): CodeTokenizer {
    assertNumber(size, 'size', { min: 3, integer: true })
    const counts = new Map<string, number>()
    for (const text of texts)
      for (const token of splitTokens(text)) counts.set(token, (counts.get(token) ?? 0) + 1)
    const ranked = [...counts.entries()].sort(
      (a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0),
    )
    return new CodeTokenizer([
      ...SPECIAL,
      ...ranked.slice(0, size - SPECIAL.length).map(([token]) => token),
    ])
  }

  /** Restores a tokenizer saved with {@link CodeTokenizer.toJSON}. */
  static fromJSON(value: unknown): CodeTokenizer {
    const json = value as TokenizerJSON
    if (
      typeof json !== 'object' ||
      json === null ||
      json.kind !== 'aide-code-tokenizer' ||
      !Array.isArray(json.vocabulary)
    ) {
      throw invalidInput('tokenizer', 'is not a serialised aide code tokenizer')
    }
    return new CodeTokenizer(json.vocabulary)
  }

  /** Number of tokens, special ones included. */
  get size(): number {
    return this.vocabulary.length
  }

  /** Token ids of `text` (unknown tokens map to {@link UNKNOWN_ID}; unknown whitespace to the nearest known one). */
  encode(text: string): number[] {
    assertString(text, 'text', { allowEmpty: true })
    return splitTokens(text).map((token) => {
      const id = this.ids.get(token)
      if (id !== undefined) return id
      if (token.startsWith('\n')) {
        for (let indent = token.length - 1; indent >= 0; indent--) {
          const shorter = this.ids.get(token.slice(0, indent + 1))
          if (shorter !== undefined) return shorter
        }
      }
      return UNKNOWN_ID
    })
  }

  /** Text of token ids (special tokens decode to nothing). */
  decode(ids: readonly number[]): string {
    let text = ''
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabulary.length)
        throw invalidInput('ids', `contains ${id}, which is not a token id`)
      if (id > PAD_ID) text += this.vocabulary[id]
    }
    return text
  }

  /** The last `length` ids of `ids`, left-padded with {@link PAD_ID}. */
  static window(ids: readonly number[], length: number): number[] {
    const tail = ids.slice(Math.max(0, ids.length - length))
    return [...new Array<number>(length - tail.length).fill(PAD_ID), ...tail]
  }

  toJSON(): TokenizerJSON {
    return { kind: 'aide-code-tokenizer', version: 1, vocabulary: [...this.vocabulary] }
  }
}
