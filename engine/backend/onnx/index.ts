export { createOnnxBackend, OnnxBackend, defaultThreads } from './onnx-backend';
export type { OnnxBackendOptions } from './onnx-backend';
