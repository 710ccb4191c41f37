// The sampling page's HTML (one file, no build step): controls for seed,
// count, steps, class, guidance, canvas size and back-end, a status line and
// the images. The script is /web/app.js (src/web/app.ts).
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Patch Diffusion: sample in the browser</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
  h1 { font-size: 1.3rem; margin: 0 0 1rem; }
  form { display: flex; flex-wrap: wrap; gap: 0.8rem 1.2rem; align-items: end; margin-bottom: 1rem; }
  label { display: flex; flex-direction: column; font-size: 0.8rem; gap: 0.2rem; }
  input { width: 6rem; }
  #status { min-height: 1.4rem; margin: 0.5rem 0 1rem; }
  #status.error { color: #b00020; font-weight: 600; }
  #images { display: flex; flex-wrap: wrap; gap: 0.8rem; }
  figure { margin: 0; text-align: center; font-size: 0.8rem; }
  canvas { image-rendering: pixelated; border: 1px solid #ccc; display: block; }
</style>
</head>
<body>
<h1>Patch Diffusion: sample in the browser</h1>
<form onsubmit="return false">
  <label>first seed <input id="seed" type="number" min="0" value="0"></label>
  <label>images <input id="count" type="number" min="1" max="64" value="4"></label>
  <label>steps <input id="steps" type="number" min="1" max="256" value="18"></label>
  <label id="classRow">class (empty: random) <input id="classIndex" type="number" min="0"></label>
  <label>guidance (empty: none) <input id="cfg" type="number" step="0.1"></label>
  <label>canvas side <input id="canvasSize" type="number" min="8" step="8"></label>
  <label>back-end <select id="backend"><option value="wasm">WASM</option><option value="webgpu">WebGPU</option></select></label>
  <button id="run" type="button">Sample</button>
</form>
<div id="status">loading…</div>
<div id="images"></div>
<script type="module" src="web/app.js"></script>
</body>
</html>
`;
