import { defaultClientConditions, defineConfig } from 'vite'

export default defineConfig({
  // Run the aide packages from source, as the rest of the repository does.
  resolve: { conditions: ['@aide/source', ...defaultClientConditions] },
  // onnxruntime-web fetches its .wasm/.mjs at run time from /ort/ (see web/main.ts).
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  build: { target: 'es2022', chunkSizeWarningLimit: 2000 },
})
