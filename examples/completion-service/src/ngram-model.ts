/**
 * A small in-process code-completion model: a token trigram model with
 * back-off, trained at start-up on a folder of TypeScript sources. It runs in
 * the service process, needs no runtime or download, and is deterministic, so
 * the service always has one local model to fall back on when remote
 * providers are down.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AideError, throwIfAborted } from '@aide/core'
import type {
  BackendCallOptions,
  BackendRequest,
  BackendResult,
  ModelBackend,
} from '@aide/orchestrator'

/** Identifiers, numbers, runs of spaces, newlines, and single punctuation characters. */
const TOKEN = /[A-Za-z_$][\w$]*|\d+(?:\.\d+)?|\n| +|\t+|[^\s\w$]/g

/** Splits source text into the tokens the model counts. */
export function tokenize(text: string): string[] {
  return text.match(TOKEN) ?? []
}

/** Options of {@link trainNgramModel}. */
export interface NgramTrainOptions {
  /** Source texts to learn from. */
  texts: readonly string[]
}

/** What {@link NgramModel.stats} reports. */
export type NgramModelStats = {
  kind: 'ngram'
  trainingTokens: number
  contexts: number
  requests: number
}

const SEPARATOR = '\u0000'

/** Picks the most frequent continuation (ties broken by token order, so results are stable). */
function best(counts: Map<string, number> | undefined): string | undefined {
  if (!counts) return undefined
  let winner: string | undefined
  let top = 0
  for (const [token, count] of counts) {
    if (count > top || (count === top && winner !== undefined && token < winner)) {
      winner = token
      top = count
    }
  }
  return winner
}

function bump(table: Map<string, Map<string, number>>, context: string, next: string): void {
  let counts = table.get(context)
  if (!counts) table.set(context, (counts = new Map()))
  counts.set(next, (counts.get(next) ?? 0) + 1)
}

/** A trigram model with back-off to bigrams, as an orchestrator {@link ModelBackend}. */
export class NgramModel implements ModelBackend {
  readonly kind = 'ngram'
  readonly #trigrams = new Map<string, Map<string, number>>()
  readonly #bigrams = new Map<string, Map<string, number>>()
  #trainingTokens = 0
  #requests = 0

  /** Adds one text to the counts. */
  learn(text: string): void {
    const tokens = tokenize(text)
    this.#trainingTokens += tokens.length
    for (let i = 1; i < tokens.length; i++) {
      bump(this.#bigrams, tokens[i - 1]!, tokens[i]!)
      if (i >= 2) bump(this.#trigrams, tokens[i - 2]! + SEPARATOR + tokens[i - 1]!, tokens[i]!)
    }
  }

  /** The greedy continuation of `prompt`, up to `maxTokens` tokens or the end of the line. */
  complete(prompt: string, maxTokens: number): { text: string; tokens: number } {
    const context = tokenize(prompt)
    let generated = ''
    let count = 0
    while (count < maxTokens) {
      const last = context.at(-1)
      const previous = context.at(-2)
      const next =
        (previous !== undefined && last !== undefined
          ? best(this.#trigrams.get(previous + SEPARATOR + last))
          : undefined) ?? (last !== undefined ? best(this.#bigrams.get(last)) : undefined)
      if (next === undefined || next === '\n') break
      generated += next
      context.push(next)
      count++
    }
    return { text: generated, tokens: count }
  }

  async invoke(request: BackendRequest, options: BackendCallOptions): Promise<BackendResult> {
    throwIfAborted(options.signal, 'ngram model')
    this.#requests++
    const prompt = request.input.prompt ?? request.input.messages?.at(-1)?.content
    if (prompt === undefined) {
      throw new AideError('E_INVALID_INPUT', 'ngram model: the request needs a prompt', {
        details: { field: 'input.prompt' },
      })
    }
    const maxTokens = request.input.maxTokens ?? 16
    const { text, tokens } = this.complete(prompt, maxTokens)
    return {
      output: { text },
      finishReason: tokens >= maxTokens ? 'length' : 'stop',
      usage: { inputTokens: tokenize(prompt).length, outputTokens: tokens },
    }
  }

  async probe(options: BackendCallOptions): Promise<void> {
    throwIfAborted(options.signal, 'ngram model probe')
    if (this.#trainingTokens === 0)
      throw new AideError('E_UNAVAILABLE', 'ngram model: trained on no text')
  }

  stats(): NgramModelStats {
    return {
      kind: 'ngram',
      trainingTokens: this.#trainingTokens,
      contexts: this.#trigrams.size,
      requests: this.#requests,
    }
  }
}

/** Trains a model on the given texts. */
export function trainNgramModel(options: NgramTrainOptions): NgramModel {
  const model = new NgramModel()
  for (const text of options.texts) model.learn(text)
  return model
}

/** Reads every `.ts` file under `directory` (recursively, skipping tests and node_modules). */
export async function readCorpus(directory: string): Promise<string[]> {
  const texts: string[] = []
  const entries = await readdir(directory, { withFileTypes: true, recursive: true })
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.test.ts')) continue
    const parent = (entry as { parentPath?: string; path?: string }).parentPath ?? entry.path
    if (parent.includes('node_modules')) continue
    texts.push(await readFile(join(parent, entry.name), 'utf8'))
  }
  return texts
}
