export { SENDER_KINDS, type SenderHooks, type Sender, type SenderKind, type SmtpEnvelope } from './sender.js';
export { PipeliningSender, type PipeliningSenderOptions } from './pipelining-sender.js';
export { NodemailerSender } from './nodemailer-sender.js';
export { createSender } from './create-sender.js';
export { stuffMessage, type StuffedMessage } from './stuff-message.js';
export { parseEhloCapabilities, type EhloCapabilities } from './ehlo-capabilities.js';
