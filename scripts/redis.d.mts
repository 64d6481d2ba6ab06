export interface RedisServer {
  url: string
  port: number
  readonly pid: number | undefined
  stop(): Promise<void>
  kill(signal?: NodeJS.Signals): Promise<void>
  restart(): Promise<void>
  pause(): boolean
  resume(): boolean
  [Symbol.asyncDispose](): Promise<void>
}
export function findTool(binary: string): string | undefined
export function ensureTool(
  binary: string,
  aptPackage: string,
  options?: { log?: (message: string) => void; purpose?: string },
): string
export function findRedisServer(): string | undefined
export function ensureRedisServer(options?: { log?: (message: string) => void }): string
export function freePort(): Promise<number>
export function ping(
  port: number,
  options?: { host?: string; timeoutMs?: number },
): Promise<boolean>
export function startRedis(options?: {
  port?: number
  args?: string[]
  startTimeoutMs?: number
}): Promise<RedisServer>
