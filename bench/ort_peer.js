// The ONNX Runtime peer of `vit bench --mode infer`: runs an ONNX file (exported by
// bench/pytorch_peer.py --export-onnx from the same PyTorch model as the PyTorch peer) with
// onnxruntime-node's CPU provider, timed as `vit bench` times inference, and prints one JSON line.
//
//   NODE_PATH=build/bench/ort/node_modules node bench/ort_peer.js --model FILE --shape B,C,H,W \
//       --threads T [--steps 10] [--warmup 2] [--json]
//
// Session options are what a deployment would choose: all graph optimisations, sequential
// execution, T intra-op threads (ORT counts the calling thread among them), one inter-op thread.
// `make compare` installs onnxruntime-node (pinned in compare.py) into build/bench/ort.
'use strict';

const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const a = {steps: 10, warmup: 2, threads: 2, json: false};
  for (let i = 0; i < argv.length; ++i) {
    const key = argv[i].replace(/^--/, '');
    if (key === 'json') {
      a.json = true;
    } else if (key in a || key === 'model' || key === 'shape') {
      if (i + 1 >= argv.length) throw new Error(`--${key} needs a value`);
      const v = argv[++i];
      a[key] = key === 'model' ? v : key === 'shape' ? v.split(',').map(Number) : Number(v);
    } else {
      throw new Error(`unknown option ${argv[i]}`);
    }
  }
  if (!a.model) throw new Error('--model FILE is required');
  if (!a.shape || a.shape.length !== 4 || a.shape.some((x) => !(x > 0))) {
    throw new Error('--shape B,C,H,W (the exported input shape) is required');
  }
  return a;
}

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
  });
  const shape = a.shape;
  const data = new Float32Array(shape.reduce((x, y) => x * y));
  let seed = 1;
  for (let i = 0; i < data.length; ++i) {  // a fixed pseudo-random image in [-1, 1)
    seed = (seed * 1103515245 + 12345) >>> 0;
    data[i] = seed / 2147483648 - 1;
  }
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, shape)};
  for (let i = 0; i < a.warmup; ++i) await session.run(feeds);
  const ms = [];
  for (let i = 0; i < a.steps; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const total = ms.reduce((x, y) => x + y, 0) / 1e3;
  const out = {
    batch: shape[0],
    threads: a.threads,
    ort: require('onnxruntime-node/package.json').version,
    infer_img_per_s: (shape[0] * ms.length) / total,
    infer_ms_median: median(ms),
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  };
  if (a.json) {
    console.log(JSON.stringify(out));
  } else {
    for (const [k, v] of Object.entries(out)) console.log(`${k}: ${v}`);
  }
}

main().catch((e) => {
  console.error(`ort_peer: ${e.message}`);
  process.exit(1);
});
