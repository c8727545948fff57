// Builds the studio's client into ../dist/client; `npm run dev -w @pretext/studio` serves it with hot
// reload and proxies /api to a studio started with `pretext studio --port 7860`.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const studio = process.env.STUDIO_URL ?? 'http://127.0.0.1:7860';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: fileURLToPath(new URL('../dist/client', import.meta.url)), emptyOutDir: true, chunkSizeWarningLimit: 600 },
  server: {
    port: 5173,
    // The studio refuses cross-origin requests: the dev proxy presents them as its own.
    proxy: { '/api': { target: studio, changeOrigin: true, headers: { origin: studio } } },
  },
});
