export { startSink, type Sink, type SinkStats } from './start-sink.js';
export type { SinkOptions } from './sink-options.js';
export type { ReceivedMessage } from './received-message.js';
export { parseScript, type SinkBehaviour } from './parse-script.js';
export { parseHeaderBlock, type HeaderField } from './parse-header-block.js';
export { parseStoredMessage } from './parse-stored-message.js';
export {
  SinkError,
  SinkOptionsError,
  SinkWaitTimeoutError,
  SinkClosedError,
  SinkNoRawError,
  type SinkErrorCode,
} from './sink-error.js';
