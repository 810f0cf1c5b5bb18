// Build dist/: index.html + main.js + main.css (video.js CSS included), and
// live.html + live.js (the low-latency hls.js player).
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';

const outdir = new URL('./dist/', import.meta.url).pathname;
await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
await build({
  entryPoints: { main: 'src/main.js', live: 'src/live.js' },
  absWorkingDir: new URL('.', import.meta.url).pathname,
  bundle: true,
  minify: true,
  sourcemap: 'linked',
  format: 'iife',
  target: ['es2020'],
  outdir,
  legalComments: 'linked',
  logLevel: 'info',
});
await copyFile(new URL('./index.html', import.meta.url), `${outdir}index.html`);
await copyFile(new URL('./live.html', import.meta.url), `${outdir}live.html`);
console.log(`built ${outdir}`);
