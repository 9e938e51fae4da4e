export { createOnnxBackend, OnnxBackend, defaultThreads, ortSessionOptions } from './onnx-backend';
export type { OnnxBackendOptions } from './onnx-backend';
