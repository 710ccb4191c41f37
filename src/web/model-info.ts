// What the sampling page reads next to model.onnx (model.json): written by
// `serve` from the snapshot, so the page needs nothing from the ONNX file itself.
/**
 * What the sampling page needs to know of the exported network: model.json, which `serve` writes beside
 * model.onnx.
 */
export interface ModelInfo {
  /** Training resolution in pixels (the canvas side by default). */
  resolution: number;
  /** Image channels (1 or 3). */
  channels: number;
  /** Classes of a class-conditional network (0: unconditional). */
  labelDim: number;
  /** The network takes the two coordinate channels (Patch Diffusion). */
  coordinates: boolean;
  /** Trained with --mask-pos: the coordinate inputs get zeros. */
  maskPos: boolean;
  /** Lowest σ the network supports (the sampler's σ range is clamped to it). */
  sigmaMin: number;
  /** null: unbounded (JSON has no Infinity). */
  sigmaMax: number | null;
  /** The snapshot file the model was exported from. */
  source: string;
  /** The ONNX graph's input and output names (null: the network has no such input). */
  inputs: { x: string; sigma: string; pos: string | null; labels: string | null; output: string };
}

