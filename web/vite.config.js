import { defineConfig } from "vite";

// The build lands where the Go server embeds it (internal/server/ui).
export default defineConfig({
  base: "/",
  build: {
    outDir: "../internal/server/ui/dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
  },
});
