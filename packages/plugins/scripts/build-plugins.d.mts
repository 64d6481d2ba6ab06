/** Folder of the @aide/plugins package. */
export const packageDir: string
/** Compiles WebAssembly text to a binary module. */
export function compileWat(source: string, name?: string): Promise<Uint8Array>
/** Compiles every `*.wat` in `dir` to `outDir/<name>.wasm`, skipping up-to-date outputs. */
export function compileWatFolder(dir: string, outDir: string): Promise<void>
/** Builds every shipped plugin; resolves to the names that were rebuilt. */
export function buildShippedPlugins(): Promise<string[]>
