// ONNX export of the preconditioned denoiser (for onnxruntime, in Node, Python or the browser).
export {
  exportDenoiser, exportModel, exportSnapshot, denoiserMetadata, OnnxExportError, ONNX_OPSET, ONNX_IR_VERSION, ONNX_FORMAT, ONNX_OPS_USED,
  type ExportOptions, type ExportResult,
} from './export.js';
export { encodeModel, decodeModel, type ModelProto } from './proto.js';
