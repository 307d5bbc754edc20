export { createExternalProcessor, DEFAULT_MAX_BODY_BYTES, type ExternalProcessorOptions, type ExternalProcessorService } from './external-processor.js';
export { BodyThreads, type BodyThreadsOptions } from './body-threads.js';
