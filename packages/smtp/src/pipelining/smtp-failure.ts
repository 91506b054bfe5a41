import { SmtpSendError } from '../relay-transport.js';

/**
 * The error codes the pipelining sender reports, named and used as nodemailer's SMTP connection uses them
 * so that `classifySmtpOutcome` reads both senders alike.
 */
export type SmtpFailureCode =
  | 'ECONNECTION'
  | 'ETIMEDOUT'
  | 'ESOCKET'
  | 'ETLS'
  | 'EAUTH'
  | 'EENVELOPE'
  | 'EMESSAGE'
  | 'EPROTOCOL'
  | 'ESTREAM'
  | 'EDNS';

/** The command a failure happened at, as nodemailer names them. */
export type SmtpFailureCommand =
  | 'CONN'
  | 'EHLO'
  | 'HELO'
  | 'STARTTLS'
  | 'AUTH'
  | 'AUTH PLAIN'
  | 'AUTH LOGIN'
  | 'MAIL FROM'
  | 'RCPT TO'
  | 'DATA'
  | 'RSET'
  | 'API';

/**
 * Builds the SmtpSendError of a failure, shaped as nodemailer formats its errors: the reply, when there is
 * one, is appended to the message and gives `responseCode`. Never pass credentials or addresses in `message`.
 */
export function smtpFailure(
  message: string,
  code: SmtpFailureCode,
  command: SmtpFailureCommand,
  response?: string,
  cause?: unknown,
): SmtpSendError {
  const responseCode = response === undefined ? undefined : Number(/^\d{3}/.exec(response)?.[0] ?? NaN);
  return new SmtpSendError(
    {
      code,
      command,
      message: response === undefined ? message : `${message}: ${response}`,
      ...(response === undefined ? {} : { response }),
      ...(responseCode === undefined || Number.isNaN(responseCode) ? {} : { responseCode }),
    },
    cause === undefined ? undefined : { cause },
  );
}

/** The same failure, now known to have happened after the whole body was handed to the socket. */
export function afterBodyWritten(err: SmtpSendError): SmtpSendError {
  return new SmtpSendError({ ...err.observation, bodyWritten: true }, { cause: err.cause ?? err });
}

/** Any error as an SmtpSendError (a bug surfacing as a plain Error stays retryable: no code, no reply). */
export function asSmtpSendError(err: unknown): SmtpSendError {
  if (err instanceof SmtpSendError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SmtpSendError({ message }, { cause: err });
}

/** Resolver failures (`dns.lookup`), which nodemailer reports as EDNS. */
const RESOLVER_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME']);

/** Whether a socket error is the relay's host name failing to resolve. */
export function isResolverFailure(err: unknown): boolean {
  const e = err as { code?: unknown; syscall?: unknown } | null;
  return e?.syscall === 'getaddrinfo' || (typeof e?.code === 'string' && RESOLVER_CODES.has(e.code));
}

/** OpenSSL certificate verification results, as Node reports them in `err.code`. */
const CERTIFICATE_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'HOSTNAME_MISMATCH',
  'EPROTO',
]);

/**
 * Whether a socket error is the TLS handshake or certificate check failing (configuration, or an attack),
 * rather than the network: those are reported as `ETLS`. A reset during the handshake stays `ESOCKET`.
 */
export function isTlsFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return (
    CERTIFICATE_CODES.has(code) ||
    code.startsWith('CERT_') ||
    code.startsWith('ERR_TLS_') ||
    code.startsWith('ERR_SSL_')
  );
}
