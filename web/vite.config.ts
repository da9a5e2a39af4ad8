import { defineConfig } from "vite";

// The built page goes into the Python package, which `alatau serve` serves (docs/web.md).
// `npm run dev` serves the sources with the venue's HTTP API proxied from a running
// `alatau serve` on its default ports.
export default defineConfig({
  base: "./",
  build: {
    outDir: "../gateway/transport/web-static",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8766",
      "/config.json": "http://127.0.0.1:8766",
    },
  },
});
