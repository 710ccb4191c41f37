// Train a tiny model with a progress line, stop it, resume it, and sample
// four images into memory. (The README's library example; CI runs it.)
import { DiffusionModel, train, writeImages } from 'patch-diffusion';

const stop = new AbortController();
const request = { data: 'fashion-mnist-5k', arch: 'small', duration: 0.002, tick: 0.25, outdir: 'runs', seed: 0 } as const;
const first = await train({
  ...request,
  signal: stop.signal,
  onEvent: (e) => {
    if (e.type === 'tick') console.log(`kimg ${e.kimg.toFixed(2)}/${e.totalKimg}  loss ${e.loss.toFixed(3)}  ${e.imagesPerSec.toFixed(0)} img/s`);
    if (e.type === 'tick' && e.kimg >= 0.5) stop.abort(); // stops after this step, with a resumable state
  },
});
const done = await train({ resume: first!.runDir });
console.log(`stopped at ${first!.curNimg} images, resumed to ${done!.curNimg}`);

const model = DiffusionModel.load(done!.runDir);
const images = model.sample({ seeds: [0, 1, 2, 3], steps: 18 }); // uint8 pixels, NHWC
console.log(`${images.count} images of ${images.width}×${images.height}×${images.channels}`);
await writeImages(images, `${done!.runDir}/samples`, [0, 1, 2, 3]);
model.dispose();
