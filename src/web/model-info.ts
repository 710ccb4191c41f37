// What the sampling page reads next to model.onnx (model.json): written by
// `serve` from the snapshot, so the page needs nothing from the ONNX file itself.
export interface ModelInfo {
  resolution: number;
  channels: number;
  labelDim: number;
  coordinates: boolean;
  /** Trained with --mask-pos: the coordinate inputs get zeros. */
  maskPos: boolean;
  sigmaMin: number;
  /** null: unbounded (JSON has no Infinity). */
  sigmaMax: number | null;
  source: string;
  inputs: { x: string; sigma: string; pos: string | null; labels: string | null; output: string };
}

