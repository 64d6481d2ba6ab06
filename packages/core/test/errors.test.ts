import { describe, expect, it } from 'vitest'
import { AideError, invalidInput, isAideError, toAideError } from '../src/index.js'

describe('AideError', () => {
  it('carries code, details, cause and a retryable default by code', () => {
    const cause = new Error('socket closed')
    const error = new AideError('E_UNAVAILABLE', 'cache: redis is down', {
      cause,
      details: { host: 'x' },
    })
    expect(error.code).toBe('E_UNAVAILABLE')
    expect(error.cause).toBe(cause)
    expect(error.details).toEqual({ host: 'x' })
    expect(error.isRetryable).toBe(true)
    expect(new AideError('E_INVALID_INPUT', 'bad').isRetryable).toBe(false)
    expect(new AideError('E_INVALID_INPUT', 'bad', { isRetryable: true }).isRetryable).toBe(true)
  })

  it('is recognised across copies of the package through the Symbol.for marker', () => {
    const foreign = Object.assign(new Error('x'), {
      [Symbol.for('@aide/core/AideError')]: true,
      code: 'E_LIMIT',
    })
    expect(AideError.isInstance(foreign)).toBe(true)
    expect(AideError.isInstance(new Error('x'))).toBe(false)
    expect(AideError.isInstance(null)).toBe(false)
    expect(isAideError(new AideError('E_LIMIT', 'x'), 'E_LIMIT')).toBe(true)
    expect(isAideError(new AideError('E_LIMIT', 'x'), 'E_TIMEOUT')).toBe(false)
  })

  it('invalidInput names the field', () => {
    const error = invalidInput('options.ttl', 'must be >= 0')
    expect(error.code).toBe('E_INVALID_INPUT')
    expect(error.message).toBe('options.ttl must be >= 0')
    expect(error.details.field).toBe('options.ttl')
  })

  it('toAideError wraps foreign errors and keeps aide errors', () => {
    const original = new AideError('E_MODEL', 'x')
    expect(toAideError(original)).toBe(original)
    const wrapped = toAideError(new RangeError('boom'), 'E_PLUGIN')
    expect(wrapped.code).toBe('E_PLUGIN')
    expect(wrapped.message).toBe('boom')
    expect(wrapped.cause).toBeInstanceOf(RangeError)
    expect(JSON.parse(JSON.stringify(wrapped))).toMatchObject({
      code: 'E_PLUGIN',
      cause: { name: 'RangeError' },
    })
  })
})
