// Vite builds the web console into the directory the caller names
// (`vite build --outDir BUILD/web`); pampad serves it with --ui-dir.
// In development `npm run dev` proxies /api (REST and WebSockets) to a
// running pampad: PAMPA_URL, default http://127.0.0.1:8123.
import { defineConfig } from 'vitest/config';
import preact from '@preact/preset-vite';

const target = process.env.PAMPA_URL ?? 'http://127.0.0.1:8123';

export default defineConfig({
  plugins: [preact()],
  // Relative asset URLs: the app works under any prefix pampad serves it at.
  base: './',
  build: {
    // noVNC and xterm are modern code; es2022 keeps top-level await and
    // class fields as they are instead of down-levelling them.
    target: 'es2022',
    outDir: 'dist',
    // A few hundred KiB of lazily loaded console code is expected.
    chunkSizeWarningLimit: 600,
    sourcemap: false,
  },
  server: {
    proxy: {
      '/api': { target, ws: true, changeOrigin: true },
    },
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts'],
  },
});
