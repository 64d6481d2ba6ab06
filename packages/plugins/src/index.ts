/**
 * `@aide/plugins`: a sandboxed WebAssembly plugin host on Extism with hard
 * time and memory limits, capability grants, a local registry, and shipped
 * security-audit plugins.
 *
 * `@extism/extism` is an optional peer dependency, imported on the first
 * `host.load()`: importing this package never loads it.
 *
 * @packageDocumentation
 */
export {
  type CapabilityPolicy,
  type GrantedCapabilities,
  grantCapabilities,
} from './capabilities.js'
export {
  type PluginCodeAction,
  type PluginDiagnostic,
  type Position,
  type QuickFix,
  type Range,
  rangesIntersect,
  type Severity,
  type TextDocument,
  type TextEdit,
} from './documents.js'
export {
  type AggregateOptions,
  type CodeActionsResult,
  createPluginHost,
  type DiagnosticsResult,
  type Isolation,
  type LoadedPluginInfo,
  type LoadOptions,
  type PluginFailure,
  type PluginHost,
  type PluginHostEvents,
  type PluginHostOptions,
  type PluginHostStats,
  type PluginLimits,
  type PluginSource,
  type PluginStats,
} from './host.js'
export {
  CAPABILITY_NAMES,
  checkCompatibility,
  ENTRY_KINDS,
  type EntryInput,
  type EntryKind,
  MANIFEST_FILE,
  type PluginEntry,
  type PluginManifest,
  parseManifest,
  type RequestedCapabilities,
  sha256Hex,
  verifyIntegrity,
} from './manifest.js'
export {
  type InstalledPlugin,
  type InstallOptions,
  openPluginRegistry,
  type PluginRegistry,
  type PluginRegistryEvents,
  type PluginRegistryOptions,
  type PluginRegistryStats,
  type SearchHit,
  type SearchOptions,
} from './registry.js'
export { type ShippedPlugin, shippedPluginsDir } from './shipped.js'
export { capMemory, readMemoryLimits, WASM_PAGE_BYTES, type WasmMemoryLimits } from './wasm.js'
